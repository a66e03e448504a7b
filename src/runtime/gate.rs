//! `InputGate`: the merged input of a task with several upstream channels. It keeps one watermark
//! per channel and emits their minimum when it advances, and ends when every channel has ended.
//! Barrier alignment (blocking a channel that delivered barrier n) will live here too.

use std::future::poll_fn;
use std::task::Poll;

use tokio::sync::mpsc::Receiver;

use crate::message::{EventTime, Message};

pub struct InputGate {
    channels: Vec<Receiver<Message>>,
    watermarks: Vec<EventTime>,
    ended: Vec<bool>,
    /// The last watermark emitted (minimum over channels).
    current_watermark: EventTime,
    /// Round-robin start, so a busy channel cannot starve the others.
    next: usize,
    end_emitted: bool,
}

impl InputGate {
    pub fn new(channels: Vec<Receiver<Message>>) -> Self {
        let n = channels.len();
        InputGate {
            channels,
            watermarks: vec![EventTime::MIN; n],
            ended: vec![false; n],
            current_watermark: EventTime::MIN,
            next: 0,
            end_emitted: false,
        }
    }

    /// The next message for the task: data as it arrives, a watermark when the minimum over the
    /// channels advances, `End` once every channel ended. `None` if an upstream task vanished
    /// without `End` (the job is being torn down).
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if self.ended.iter().all(|e| *e) {
                return (!std::mem::replace(&mut self.end_emitted, true)).then_some(Message::End);
            }
            let (index, message) = self.recv_any().await?;
            match message {
                Message::Data(_) | Message::Barrier(_) => return Some(message),
                Message::Watermark(w) => {
                    if w > self.watermarks[index] {
                        self.watermarks[index] = w;
                    }
                    if let Some(advanced) = self.advance_watermark() {
                        return Some(Message::Watermark(advanced));
                    }
                }
                Message::End => {
                    self.ended[index] = true;
                    // An ended channel no longer holds the watermark back.
                    self.watermarks[index] = EventTime::MAX;
                    if !self.ended.iter().all(|e| *e)
                        && let Some(advanced) = self.advance_watermark()
                    {
                        return Some(Message::Watermark(advanced));
                    }
                }
            }
        }
    }

    fn advance_watermark(&mut self) -> Option<EventTime> {
        let min = self.watermarks.iter().copied().min().unwrap_or(EventTime::MIN);
        (min > self.current_watermark).then(|| {
            self.current_watermark = min;
            min
        })
    }

    async fn recv_any(&mut self) -> Option<(usize, Message)> {
        poll_fn(|cx| {
            let n = self.channels.len();
            let mut open = 0;
            for offset in 0..n {
                let i = (self.next + offset) % n;
                if self.ended[i] {
                    continue;
                }
                open += 1;
                match self.channels[i].poll_recv(cx) {
                    Poll::Ready(Some(message)) => {
                        self.next = (i + 1) % n;
                        return Poll::Ready(Some((i, message)));
                    }
                    // The sender was dropped without End: the upstream task failed.
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => {}
                }
            }
            if open == 0 { Poll::Ready(None) } else { Poll::Pending }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::channel;

    #[tokio::test]
    async fn emits_minimum_watermark_and_end_after_all_channels() {
        let (a_tx, a_rx) = channel(8);
        let (b_tx, b_rx) = channel(8);
        let mut gate = InputGate::new(vec![a_rx, b_rx]);
        a_tx.send(Message::Watermark(10)).await.unwrap();
        b_tx.send(Message::Watermark(5)).await.unwrap();
        a_tx.send(Message::End).await.unwrap();
        b_tx.send(Message::Watermark(20)).await.unwrap();
        b_tx.send(Message::End).await.unwrap();
        let mut seen = Vec::new();
        while let Some(m) = gate.next().await {
            match m {
                Message::Watermark(w) => seen.push(w),
                Message::End => {
                    seen.push(-1);
                    break;
                }
                _ => {}
            }
        }
        // 5 once both channels reported, 20 when a ended (b at 20), then End.
        assert_eq!(seen, vec![5, 20, -1]);
    }
}
