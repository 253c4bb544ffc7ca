//! The Lambda runtime API, for one invocation: `next` hands out the event
//! once (and then waits, as Lambda does between invocations), and the
//! function's response or error is kept for `GET /__response`.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::StatusCode;

use crate::{Reply, reply};

pub struct Runtime {
    event: Mutex<Option<String>>,
    answer: Mutex<Option<String>>,
}

const REQUEST_ID: &str = "bench-0001";

impl Runtime {
    pub fn new(event: Option<String>) -> Runtime {
        Runtime {
            event: Mutex::new(event),
            answer: Mutex::new(None),
        }
    }

    pub async fn answer(&self, path: &str, body: &[u8]) -> Reply {
        if path == "/__response" {
            return match self.answer.lock().ok().and_then(|a| a.clone()) {
                Some(text) => reply(StatusCode::OK, "application/json", text),
                None => reply(StatusCode::NO_CONTENT, "text/plain", String::new()),
            };
        }
        if path.ends_with("/invocation/next") {
            let event = self.event.lock().ok().and_then(|mut e| e.take());
            let Some(event) = event else {
                // No second invocation: wait as Lambda would, until killed.
                std::future::pending::<()>().await;
                return reply(StatusCode::OK, "text/plain", String::new());
            };
            let mut response = reply(StatusCode::OK, "application/json", event);
            // Fifteen minutes from now, in epoch milliseconds, as Lambda sends it.
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() + 900_000);
            let headers = response.headers_mut();
            for (name, value) in [
                ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:000000000000:function:ecr-gc".to_owned(),
                ),
            ] {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
            return response;
        }
        if path.ends_with("/response") || path.ends_with("/error") {
            let text = String::from_utf8_lossy(body).into_owned();
            if let Ok(mut answer) = self.answer.lock() {
                *answer = Some(text);
            }
            return reply(StatusCode::ACCEPTED, "application/json", "{}".to_owned());
        }
        reply(StatusCode::NOT_FOUND, "text/plain", format!("no {path}"))
    }
}
