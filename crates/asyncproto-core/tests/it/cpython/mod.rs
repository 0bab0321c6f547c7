//! Ports of CPython 3.11.7's `Lib/test/test_asyncio/` transport tests: one
//! module per file, one per class.

mod test_protocols;
mod test_selector_events;
mod test_sslproto;
mod test_transports;
