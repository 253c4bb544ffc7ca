//! Pacing one lane's requests under a rate limit it learns as it goes.
//!
//! ECR does not say its rate limits; it answers `ThrottlingException` past
//! them. A lane starts at [`START`] requests a second and probes upwards:
//! the rate doubles each second while every answer is a success. The first
//! throttle ends the probe and halves what ECR accepted in the second
//! before it (that second may have had a burst); later ones set the rate to
//! nine tenths of it, or take a quarter off when the last cut was under a
//! second ago, and none counts in the quarter second after a cut (it
//! answers a request sent before). After a cut, the rate climbs back fast
//! to nine tenths of the estimate and past it slowly, by [`GROWTH`] of
//! itself with each request accepted. It never grows past twice what was
//! really sent in the last second, so a lane that the work, not the limit,
//! holds back does not build up a burst. A request goes when its slot has
//! come: slots are spaced `1 / rate` apart and never booked ahead, so
//! requests waiting when the rate is cut go at the new rate.
//!
//! The clock is a parameter of [`State`], so the policy is tested without
//! waiting; [`Pace`] reads the real one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests a second before anything is known.
pub const START: f64 = 20.0;
/// How much of itself the rate grows with each accepted request after the
/// first throttle: a tenth back in about a hundred requests, so that a lane
/// at its limit is throttled about once in a hundred and some.
pub const GROWTH: f64 = 0.001;
/// What a throttle sets the rate to, of what ECR accepted in the second
/// before it.
const CUT: f64 = 0.9;
/// The slowest and fastest a lane goes.
const SLOWEST: f64 = 1.0;
const FASTEST: f64 = 10_000.0;
const SECOND: Duration = Duration::from_secs(1);
/// How long after a cut throttles are taken to answer requests sent before
/// it.
const SETTLE: Duration = Duration::from_millis(250);

/// A lane's pace, shared by its requests and its throttle signal.
#[derive(Debug)]
pub struct Pace(Mutex<State>);

impl Default for Pace {
    fn default() -> Pace {
        Pace(Mutex::new(State::new(Instant::now())))
    }
}

impl Pace {
    /// Waits for this lane's next slot. A slot is taken only when it has
    /// come, never booked ahead: requests waiting when the rate is cut go
    /// at the new rate.
    pub async fn ready(&self) {
        loop {
            let now = Instant::now();
            let wait = match self.lock().take(now) {
                Ok(()) => return,
                Err(until) => until - now,
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Learns from one answer: throttled or not.
    pub fn answered(&self, throttled: bool) {
        self.lock().answered(Instant::now(), throttled);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few numbers, valid after any panic.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How many of `times` fall in the second before `now`; older ones are
/// dropped.
fn in_last_second(times: &mut VecDeque<Instant>, now: Instant) -> f64 {
    while times.front().is_some_and(|&at| at + SECOND < now) {
        times.pop_front();
    }
    times.len() as f64
}

/// The pacing policy, with the clock passed in.
#[derive(Debug)]
pub struct State {
    rate: f64,
    /// The earliest the next request may go.
    next: Instant,
    /// The slots given in the last second.
    sent: VecDeque<Instant>,
    /// The answers that were not throttled, in the last second.
    accepted: VecDeque<Instant>,
    /// No throttle yet: the rate doubles each second.
    probing: bool,
    /// Nine tenths of the last estimate of the limit: the rate climbs back
    /// to it as fast as it probes, and past it slowly.
    threshold: f64,
    last_cut: Option<Instant>,
}

impl State {
    pub fn new(now: Instant) -> State {
        State {
            rate: START,
            next: now,
            sent: VecDeque::new(),
            accepted: VecDeque::new(),
            probing: true,
            threshold: FASTEST,
            last_cut: None,
        }
    }

    /// Takes the slot if it has come, or says when it will.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        if self.next > now {
            return Err(self.next);
        }
        // A lane idle for a while does not bank slots.
        self.next = self
            .next
            .max(now - Duration::from_secs_f64(1.0 / self.rate))
            + Duration::from_secs_f64(1.0 / self.rate);
        self.sent.push_back(now);
        Ok(())
    }

    pub fn answered(&mut self, now: Instant, throttled: bool) {
        let sent = in_last_second(&mut self.sent, now);
        if throttled {
            // Throttles just after a cut answer requests sent before it.
            if self.last_cut.is_some_and(|at| now < at + SETTLE) {
                return;
            }
            let accepted = in_last_second(&mut self.accepted, now);
            // Throttled again soon after a cut, the estimate was high: cut
            // deeper. The first throttle ends a probe, whose last second
            // may have had the bucket's burst too: halve.
            let again = self.last_cut.is_some_and(|at| now < at + SECOND);
            let estimate = if accepted > 0.0 {
                accepted.min(self.rate)
            } else {
                self.rate / 2.0
            };
            let cut = match (self.probing, again) {
                (true, _) => 0.5,
                (false, true) => 0.75,
                (false, false) => CUT,
            };
            self.rate = (estimate * cut).clamp(SLOWEST, FASTEST);
            // Back to this quickly; past it, slowly.
            self.threshold = (estimate * CUT).max(self.rate);
            self.probing = false;
            self.last_cut = Some(now);
        } else {
            self.accepted.push_back(now);
            // Probing, about `rate` answers a second each add one: the
            // rate doubles each second.
            let grown = if self.probing || self.rate < self.threshold {
                (self.rate + 1.0).min(self.threshold)
            } else {
                self.rate * (1.0 + GROWTH)
            };
            let ceiling = (2.0 * sent).max(START).max(self.rate);
            self.rate = grown.min(ceiling).min(FASTEST);
        }
    }

    #[cfg(test)]
    fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends at the pace for `seconds`, answering each request as
    /// `limit` (requests a second) allows, and returns the rate reached
    /// and the throttles.
    fn simulate(state: &mut State, start: Instant, seconds: f64, limit: f64) -> (f64, f64) {
        let mut tokens = limit;
        let mut last = start;
        let (mut requests, mut throttles) = (0.0, 0.0);
        let end = start + Duration::from_secs_f64(seconds);
        let mut now = start;
        while now < end {
            if let Err(at) = state.take(now) {
                now = at;
                continue;
            }
            tokens = (tokens + (now - last).as_secs_f64() * limit).min(limit);
            last = now;
            let throttled = tokens < 1.0;
            requests += 1.0;
            if throttled {
                throttles += 1.0;
            } else {
                tokens -= 1.0;
            }
            state.answered(now, throttled);
        }
        (state.rate(), throttles / requests)
    }

    #[track_caller]
    fn check(limit: f64, seconds: f64, lowest: f64) {
        let start = Instant::now();
        let mut state = State::new(start);
        let (rate, throttled) = simulate(&mut state, start, seconds, limit);
        assert!(
            rate >= lowest * limit && rate <= 1.2 * limit,
            "limit {limit}: rate {rate}"
        );
        assert!(throttled < 0.02, "limit {limit}: {throttled} throttled");
    }

    /// The pace settles near each limit, above 80 % of it, with few
    /// throttles: under 2 % of the requests sent.
    #[test]
    fn the_pace_settles_near_the_limit_with_few_throttles() {
        check(20.0, 30.0, 0.8);
        check(100.0, 10.0, 0.8);
        check(5.0, 120.0, 0.7);
    }

    /// The first throttle halves what was accepted in the second before
    /// it; later ones take a tenth, a quarter if the last cut was under a
    /// second ago; and nothing changes in the quarter second after a cut.
    #[test]
    fn throttles_cut_by_what_was_accepted() {
        let start = Instant::now();
        let mut state = State::new(start);
        for i in 0..10 {
            let at = start + Duration::from_millis(50 * i);
            state.take(at).unwrap();
            state.answered(at, false);
        }
        let at = start + Duration::from_millis(600);
        state.answered(at, true);
        assert_eq!(state.rate(), 5.0, "ending the probe: half the 10 accepted");
        state.answered(at + Duration::from_millis(10), true);
        assert_eq!(state.rate(), 5.0, "no second cut just after one");
        state.answered(at + Duration::from_millis(500), true);
        assert_eq!(state.rate(), 3.75, "a quarter, within a second");
        state.answered(at + Duration::from_millis(2_000), true);
        assert_eq!(state.rate(), 3.75 / 2.0 * 0.9, "nothing accepted: half");
    }

    /// A lane the work holds back does not grow past twice what it sent.
    #[test]
    fn an_idle_lane_does_not_build_up_a_burst() {
        let start = Instant::now();
        let mut state = State::new(start);
        let mut now = start;
        for _ in 0..100 {
            now += Duration::from_millis(500);
            state.take(now).unwrap();
            state.answered(now, false);
        }
        assert_eq!(state.rate(), START, "two a second sent, START kept");
    }
}
