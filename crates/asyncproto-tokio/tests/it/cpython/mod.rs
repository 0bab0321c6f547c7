//! Ports of CPython's asyncio tests, named as upstream
//! (`cpython-test-port.md`): module = file, then class, then the test.

mod test_base_events;
mod test_buffered_proto;
mod test_events;
mod test_selector_events;
mod test_server;
mod test_sock_lowlevel;
mod test_ssl;
