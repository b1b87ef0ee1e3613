//! A running execution's events and an interactive one's input, on core NATS subjects: the
//! worker publishes `codebeaker.events.<id>` and hears `codebeaker.input.<id>`; whichever API
//! node serves the client does the opposite. At most once and unbuffered: a client that joins
//! late gets what comes from then on, and the final record from the records bucket.

use futures::{Stream, StreamExt};
use uuid::Uuid;

use super::{names, QueueError};
use crate::live::{Event, Input};

fn encode<T: serde::Serialize>(value: &T) -> Result<bytes::Bytes, QueueError> {
    rmp_serde::to_vec_named(value)
        .map(Into::into)
        .map_err(|e| QueueError::Encoding(e.to_string()))
}

/// Messages on `subject`, decoded; one that does not decode is skipped.
async fn subscribe<T: serde::de::DeserializeOwned + Send>(
    client: &async_nats::Client,
    subject: String,
) -> Result<impl Stream<Item = T> + Unpin + Send + use<T>, QueueError> {
    let subscriber = client
        .subscribe(subject)
        .await
        .map_err(|e| QueueError::setup("live subscription", e))?;
    Ok(subscriber
        .filter_map(|message| std::future::ready(rmp_serde::from_slice(&message.payload).ok())))
}

pub async fn publish_event(
    client: &async_nats::Client,
    id: &Uuid,
    event: &Event,
) -> Result<(), QueueError> {
    client
        .publish(names::events_subject(id), encode(event)?)
        .await
        .map_err(|e| QueueError::Publish(e.to_string()))
}

pub async fn events(
    client: &async_nats::Client,
    id: &Uuid,
) -> Result<impl Stream<Item = Event> + Unpin + Send + use<>, QueueError> {
    subscribe(client, names::events_subject(id)).await
}

pub async fn send_input(
    client: &async_nats::Client,
    id: &Uuid,
    input: &Input,
) -> Result<(), QueueError> {
    // Stdin goes in pieces well under NATS's payload cap (1 MiB by default), however much of
    // it a client sent at once; the pieces arrive in order on the one subject.
    let pieces: Vec<Input> = match input {
        Input::Stdin(bytes) => bytes
            .chunks(INPUT_PIECE)
            .map(|piece| Input::Stdin(piece.to_vec()))
            .collect(),
        other => vec![other.clone()],
    };
    for piece in &pieces {
        client
            .publish(names::input_subject(id), encode(piece)?)
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?;
    }
    Ok(())
}

/// The most stdin one input message carries.
const INPUT_PIECE: usize = 256 * 1024;

pub async fn input(
    client: &async_nats::Client,
    id: &Uuid,
) -> Result<impl Stream<Item = Input> + Unpin + Send + use<>, QueueError> {
    subscribe(client, names::input_subject(id)).await
}
