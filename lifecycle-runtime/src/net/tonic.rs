//! [`TcpStream`] as tonic's `Connected` (cargo feature `tonic`), so that
//! `Request::remote_addr()` and `local_addr()` keep working.

use tonic::transport::server::{Connected, TcpConnectInfo};

use super::TcpStream;

#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl Connected for TcpStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local_addr().ok(),
            remote_addr: self.peer_addr().ok(),
        }
    }
}
