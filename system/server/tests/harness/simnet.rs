//! hyper and axum over turmoil's simulated TCP: the connector the servers' own
//! `HyperTransport` dials with, and the listener `axum::serve` accepts on.
//!
//! Map: [`SimConnector`], [`SimConn`], [`sim_transport`], [`SimListener`], [`serve_pair`].

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use sovereign_server::transport::HyperTransport;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A hyper-util connector that dials turmoil's simulated TCP (the URI's host is a turmoil
/// host name).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimConnector;

impl tower_service::Service<Uri> for SimConnector {
    type Response = SimConn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<SimConn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}"))
                })?
                .to_string();
            let port = uri.port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(SimConn(TokioIo::new(stream)))
        })
    }
}

/// A simulated TCP connection as hyper sees it.
pub struct SimConn(TokioIo<turmoil::net::TcpStream>);

impl Connection for SimConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for SimConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SimConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The real HTTP client over simulated TCP.
pub fn sim_transport() -> HyperTransport<SimConnector> {
    HyperTransport::with_connector(SimConnector)
}

/// A turmoil listener that `axum::serve` accepts.
pub struct SimListener(turmoil::net::TcpListener);

impl SimListener {
    /// Bind `0.0.0.0:port` on the current host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        Ok(SimListener(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(pair) => return pair,
                Err(e) => {
                    tracing::debug!(error = %e, "simulated accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Serve `public` on `port` and `admin` on `admin_port` of the current host.
pub async fn serve_pair(
    public: axum::Router,
    port: u16,
    admin: axum::Router,
    admin_port: u16,
) -> turmoil::Result {
    let p = axum::serve(SimListener::bind(port).await?, public);
    let a = axum::serve(SimListener::bind(admin_port).await?, admin);
    tokio::try_join!(async { p.await }, async { a.await })?;
    Ok(())
}
