//! A TAM core and a real Agent wired together: one SP with an SD on both sides and a
//! TA deployed to every device.

use otrp_agent::Management;
use otrp_crypto::PrivateKey;
use otrp_store::{DeploymentAction, Rollout, Target};
use otrp_suit::ComponentId;
use otrp_tam::{Caller, Outcome, Policy};

use crate::agent::{component, oem_tams, ta_manifest, AgentDevice, ScriptedTam};
use crate::tam::{tam_keys, TamWorld, NOW};

/// The TA image of version `seq`.
pub fn image(seq: u64) -> Vec<u8> {
    format!("\0asm trusted application v{seq}").into_bytes()
}

/// The TAM core, one Agent, the SP and what it deployed.
pub struct Pair {
    /// The TAM side.
    pub world: TamWorld,
    /// The device.
    pub dev: AgentDevice,
    /// The SP account ("sp-a", SD "sd-a").
    pub sp: Caller,
    /// The SP's TA signer (authorized for "sd-a" on the device).
    pub signer: PrivateKey,
    /// The deployed component `["sd-a", "app"]`.
    pub component: ComponentId,
    /// Its store key.
    pub component_key: Vec<u8>,
    /// The TAM's key used directly (SD creation on the device).
    pub scripted: ScriptedTam,
}

impl Pair {
    /// Sets up the pair under the OEM-gated policy; the TAM is the device's OEM TAM.
    pub async fn new(seed: u64) -> Pair {
        let keys = tam_keys(1);
        let mut dev = AgentDevice::new(
            seed,
            oem_tams(&[keys.p256.public_key(), keys.ed25519.public_key()]),
            vec![],
            Management::OemGated,
        );
        let mut world = TamWorld::new(
            Policy::OemGated,
            &[(dev.ueid.as_slice(), dev.attestation_key.public_key())],
        )
        .await;
        world.bind_agent(&dev).await;
        let (sp, signer) = world.sp("sp-a", "sd-a", seed * 10 + 5).await;
        let mut scripted = ScriptedTam::new(keys.p256.clone());
        scripted.create_sd(
            &mut dev,
            b"sd-a",
            "sp-a",
            vec![signer.public_key()],
            NOW - 10,
        );
        let component = component(b"sd-a", b"app");
        let env = ta_manifest(&component, 1, &image(1), &signer);
        let reg = world
            .admin
            .register_manifest(&sp, "sd-a", "app", &env, &[signer.public_key()], NOW)
            .await
            .expect("manifest registration");
        world
            .admin
            .create_deployment(
                &sp,
                &reg.component,
                DeploymentAction::Install,
                Target::All,
                Rollout::Full,
                NOW,
            )
            .await
            .expect("deployment");
        Pair {
            world,
            dev,
            sp,
            signer,
            component,
            component_key: reg.component,
            scripted,
        }
    }

    /// Runs the exchange up to the TAM's Update: returns (QueryRequest,
    /// QueryResponse, Update) — the Update not yet given to the Agent.
    pub async fn until_update(&mut self, now: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let qr = match self.world.step(&[], now).await {
            Ok(Outcome::Reply(b)) => b,
            other => panic!("expected a QueryRequest, got {other:?}"),
        };
        let resp = self
            .dev
            .agent
            .handle(&qr, now)
            .send
            .expect("the Agent answers the QueryRequest");
        let up = match self.world.step(&resp, now + 1).await {
            Ok(Outcome::Reply(b)) => b,
            other => panic!("expected an Update, got {other:?}"),
        };
        (qr, resp, up)
    }
}
