//! `datastream.v1.Auth`: signing in over gRPC, by the API's own procedure
//! (`AppState::sign_in`: the same accounts, throttle and password workers).

use crate::proto;
use datastream_api::auth::SignInError;
use datastream_api::AppState;
use tonic::{Request, Response, Status};

/// The Auth service.
#[derive(Clone)]
pub struct AuthService {
    pub(crate) state: AppState,
}

#[tonic::async_trait]
impl proto::auth_server::Auth for AuthService {
    async fn login(
        &self,
        request: Request<proto::Credentials>,
    ) -> Result<Response<proto::Token>, Status> {
        let client = request
            .remote_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let proto::Credentials { username, password } = request.into_inner();
        let token = self
            .state
            .sign_in(client, &username, password)
            .await
            .map_err(|e| match e {
                SignInError::Empty(_) => Status::invalid_argument(e.to_string()),
                SignInError::Throttled(_) => Status::resource_exhausted(e.to_string()),
                SignInError::Busy => Status::unavailable(e.to_string()),
                SignInError::Refused => Status::unauthenticated(e.to_string()),
                SignInError::Store(error) => {
                    tracing::warn!(%error, "signing in over gRPC");
                    Status::unavailable("the account store is unavailable; try again")
                }
            })?;
        Ok(Response::new(proto::Token {
            access_token: token.access_token,
            expires_in: token.expires_in,
        }))
    }
}
