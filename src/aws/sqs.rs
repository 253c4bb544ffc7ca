//! The SQS adapter: sends message bodies ten to a SendMessageBatch call,
//! sends again what SQS failed on its own side, and hands back by index
//! whatever could still not be sent. It knows nothing of what the messages
//! say; `lambda::fanout` does.

use serde::Serialize;

use crate::aws::error_parts;

/// SQS's limit on entries per SendMessageBatch call.
pub const SEND_BATCH: usize = 10;
/// How many times entries SQS reports as failed (not the sender's fault)
/// are sent again.
pub const SEND_ATTEMPTS: usize = 3;

/// What sending took and left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub send_message_batch_calls: u64,
    /// The messages that could not be sent, by index, with why.
    pub failed: Vec<Undelivered>,
}

/// One message that could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// Its index in the slice given to [`send`].
    pub index: usize,
    pub code: String,
    pub message: String,
}

/// Sends each message as JSON, [`SEND_BATCH`] per call. Entries SQS fails
/// without blaming the sender are sent again, up to [`SEND_ATTEMPTS`] times;
/// what is still not sent is returned, never dropped.
pub async fn send<M: Serialize>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[M],
) -> Delivery {
    let mut delivery = Delivery::default();
    let indexes: Vec<usize> = (0..messages.len()).collect();
    for chunk in indexes.chunks(SEND_BATCH) {
        let mut pending: Vec<usize> = chunk.to_vec();
        for attempt in 1..=SEND_ATTEMPTS {
            let entries = entries(messages, &pending, &mut delivery.failed);
            if entries.is_empty() {
                break;
            }
            delivery.send_message_batch_calls += 1;
            let out = sqs
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(error) => {
                    // The SDK already retried the call; every entry of this
                    // chunk is reported, none dropped.
                    let (code, text) = error_parts(&error);
                    delivery
                        .failed
                        .extend(pending.iter().map(|&i| undelivered(i, &code, &text)));
                    break;
                }
            };
            delivery.sent += out.successful().len() as u64;
            let mut retry = Vec::new();
            for failure in out.failed() {
                let Some(&index) = failure
                    .id()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| pending.get(i))
                else {
                    continue;
                };
                if !failure.sender_fault() && attempt < SEND_ATTEMPTS {
                    retry.push(index);
                } else {
                    let text = failure.message().unwrap_or_default();
                    delivery
                        .failed
                        .push(undelivered(index, failure.code(), text));
                }
            }
            if retry.is_empty() {
                break;
            }
            pending = retry;
        }
    }
    delivery
}

/// The batch entries for the pending messages, each with its position in
/// `pending` as its id; a message that cannot be written is recorded as
/// failed instead.
fn entries<M: Serialize>(
    messages: &[M],
    pending: &[usize],
    failed: &mut Vec<Undelivered>,
) -> Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry> {
    let mut entries = Vec::with_capacity(pending.len());
    for (position, &index) in pending.iter().enumerate() {
        let Some(message) = messages.get(index) else {
            continue;
        };
        let body = match serde_json::to_string(message) {
            Ok(body) => body,
            Err(e) => {
                failed.push(undelivered(index, "Serialization", &e.to_string()));
                continue;
            }
        };
        match aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id(position.to_string())
            .message_body(body)
            .build()
        {
            Ok(entry) => entries.push(entry),
            Err(e) => failed.push(undelivered(index, "Build", &e.to_string())),
        }
    }
    entries
}

fn undelivered(index: usize, code: &str, text: &str) -> Undelivered {
    Undelivered {
        index,
        code: code.to_owned(),
        message: text.to_owned(),
    }
}
