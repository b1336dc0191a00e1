//! The Broker's main loop: polling with jitter, on-demand sessions, backoff, reconnects.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use otrp_tee_daemon::TeeClient;
use rand::Rng;

use crate::session::{run_session, Backoff, Http, SessionReport};
use crate::BrokerError;

/// How a Broker runs.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The TAM URI (POST endpoint).
    pub tam: String,
    /// The TEE daemon's socket.
    pub tee: PathBuf,
    /// PEM of the CA that the TAM's HTTPS certificate must chain to (else the web roots).
    pub tam_ca: Option<Vec<u8>>,
    /// Time between policy checks.
    pub interval: Duration,
    /// Random spread of the interval, as a fraction (0.2 = ±20%).
    pub jitter: f64,
    /// First backoff delay after a failure.
    pub backoff_min: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
    /// CoAP block size in bytes (16–1024) when `tam` is a `coap://` URL.
    pub coap_block_size: usize,
    /// The protocol spoken with the TAM (TEEP by default; OTrP over HTTP(S) only).
    pub profile: crate::Profile,
}

impl BrokerConfig {
    /// Defaults: 5-minute interval ±20%, backoff 1 s to 5 min, 30 s HTTP timeout.
    pub fn new(tam: impl Into<String>, tee: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            tam: tam.into(),
            tee: tee.into(),
            tam_ca: None,
            interval: Duration::from_secs(300),
            jitter: 0.2,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            http_timeout: Duration::from_secs(30),
            coap_block_size: 1024,
            profile: crate::Profile::Teep,
        }
    }
}

/// A Broker for one TEE.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    http: Http,
    tee: Option<TeeClient>,
    work_seq: Option<u64>,
    backoff: Backoff,
    sessions: u64,
    failures: u64,
    batch: crate::batch::BatchState,
    otrp_batch: crate::otrp_batch::OtrpBatchState,
}

impl Broker {
    /// A Broker (no connection is made yet).
    pub fn new(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let http = Http::new(config.tam_ca.as_deref(), config.http_timeout)?
            .with_coap_block_size(config.coap_block_size)?;
        let backoff = Backoff::new(config.backoff_min, config.backoff_max);
        Ok(Broker {
            config,
            http,
            tee: None,
            work_seq: None,
            backoff,
            sessions: 0,
            failures: 0,
            batch: crate::batch::BatchState::default(),
            otrp_batch: crate::otrp_batch::OtrpBatchState::default(),
        })
    }

    /// Sessions completed and failed so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.sessions, self.failures)
    }

    async fn tee(&mut self) -> Result<&mut TeeClient, BrokerError> {
        if self.tee.is_none() {
            let c = TeeClient::connect(&self.config.tee)
                .await
                .map_err(BrokerError::Tee)?;
            self.tee = Some(c);
        }
        self.tee
            .as_mut()
            .ok_or_else(|| BrokerError::Config("TEE connection vanished".into()))
    }

    /// Runs one session now (reconnecting to the TEE if needed).
    pub async fn session(&mut self) -> Result<SessionReport, BrokerError> {
        let http = self.http.clone();
        let tam = self.config.tam.clone();
        let profile = self.config.profile;
        let result = async {
            let tee = self.tee().await?;
            // Work asked for up to now is covered by this session.
            let seq = tee
                .request_policy_check(u64::MAX, 0)
                .await
                .map_err(BrokerError::Tee)?;
            let report = match profile {
                crate::Profile::Teep => run_session(&http, &tam, tee).await?,
                crate::Profile::Otrp => crate::run_otrp_session(&http, &tam, tee).await?,
            };
            Ok::<_, BrokerError>((seq, report))
        }
        .await;
        match result {
            Ok((seq, report)) => {
                self.work_seq = Some(seq);
                self.sessions += 1;
                tracing::info!(
                    tam_messages = report.tam_messages,
                    replies = report.tee_replies,
                    fetches = report.fetches,
                    installed = report.count("installed"),
                    removed = report.count("removed"),
                    refused = report.count("refused"),
                    profile = ?self.config.profile,
                    "session complete"
                );
                Ok(report)
            }
            Err(e) => {
                self.failures += 1;
                if matches!(e, BrokerError::Tee(_)) {
                    // Reconnect next time (the daemon may have restarted).
                    self.tee = None;
                }
                Err(e)
            }
        }
    }

    /// One batch round now (see [`crate::batch`]): nothing when the TEE belongs to no batch.
    pub async fn batch_round(&mut self) -> Result<crate::batch::BatchRound, BrokerError> {
        let http = self.http.clone();
        let tam = self.config.tam.clone();
        let mut state = std::mem::take(&mut self.batch);
        let tee = self.tee().await?;
        let r = crate::batch::batch_round(&http, &tam, tee, &mut state).await;
        self.batch = state;
        if let Err(BrokerError::Tee(_)) = &r {
            self.tee = None;
        }
        r
    }

    /// One OTrP batch round now (see [`crate::otrp_batch`]): nothing when the TEE has no
    /// model key.
    pub async fn otrp_batch_round(
        &mut self,
    ) -> Result<crate::otrp_batch::OtrpBatchRound, BrokerError> {
        let http = self.http.clone();
        let tam = self.config.tam.clone();
        let mut state = std::mem::take(&mut self.otrp_batch);
        let tee = self.tee().await?;
        let r = crate::otrp_batch::otrp_batch_round(&http, &tam, tee, &mut state).await;
        self.otrp_batch = state;
        if let Err(BrokerError::Tee(_)) = &r {
            self.tee = None;
        }
        r
    }

    fn jittered_interval(&self) -> Duration {
        let j = self.config.jitter.clamp(0.0, 1.0);
        let f = 1.0 + rand::thread_rng().gen_range(-j..=j);
        self.config.interval.mul_f64(f.max(0.05))
    }

    /// Waits for the next policy check: the interval (with jitter) or a Client App's
    /// RequestTA / UnrequestTA, whichever comes first. Returns true when a Client App
    /// asked.
    async fn wait_for_work(&mut self) -> bool {
        let wait = self.jittered_interval();
        let after = self.work_seq.unwrap_or(0);
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let polled = match self.tee().await {
            Ok(tee) => tee.request_policy_check(after, ms).await,
            Err(_) => {
                tokio::time::sleep(wait).await;
                return false;
            }
        };
        match polled {
            Ok(seq) if seq != after => {
                // Grown: a Client App asked. Shrunk: the TEE restarted; check in.
                self.work_seq = Some(seq);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "TEE unreachable; retrying");
                self.tee = None;
                tokio::time::sleep(self.backoff.next_delay().min(wait)).await;
                false
            }
        }
    }

    /// Runs until `shutdown` completes: a session at start, then one per interval (with
    /// jitter) or whenever a Client App calls RequestTA/UnrequestTA; after a failure the
    /// next attempt waits an exponentially growing, capped, jittered delay.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        tokio::pin!(shutdown);
        loop {
            let delay = match self.session().await {
                Ok(_) => {
                    self.backoff.reset();
                    let batch = match self.config.profile {
                        crate::Profile::Teep => self.batch_round().await.map(drop),
                        crate::Profile::Otrp => self.otrp_batch_round().await.map(drop),
                    };
                    if let Err(e) = batch {
                        tracing::warn!(error = %e, "batch round failed");
                    }
                    None
                }
                Err(e) => {
                    let d = self.backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "session failed");
                    Some(d)
                }
            };
            match delay {
                Some(d) => {
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(d) => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        asked = self.wait_for_work() => {
                            if asked {
                                tracing::info!("on-demand session (RequestTA/UnrequestTA)");
                            }
                        }
                    }
                }
            }
        }
    }
}
