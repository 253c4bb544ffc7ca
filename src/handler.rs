//! The Lambda handler: event + configuration -> an engine run.
