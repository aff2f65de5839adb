//! What one signature and one verification cost on this machine, measured in the benchmark's
//! own process before the runs (about two seconds): the bounds of the scenarios that sign or
//! verify on every request (an ES256 ID token on each `openid` refresh, an ES256 DPoP proof
//! verified on each DPoP request). Each figure is the best of nine batches on one thread: the
//! batch the rest of a shared machine disturbed least.

use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey, VerificationAlgorithm,
};
use serde::Serialize;

/// One operation's cost.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SignatureCost {
    pub(crate) operation: &'static str,
    pub(crate) micros: f64,
}

/// About a JWT's signing input: header and claims, base64url.
const MESSAGE_BYTES: usize = 600;

fn best_of_nine(
    repetitions: u32,
    mut operation: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    // Once untimed, so that lazy initialisation is not counted.
    operation()?;
    let mut best = f64::INFINITY;
    let repetitions = repetitions.max(1);
    for _ in 0..9 {
        let started = Instant::now();
        for _ in 0..repetitions {
            operation()?;
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / f64::from(repetitions));
    }
    Ok(best)
}

fn verifies(
    algorithm: &'static dyn VerificationAlgorithm,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> anyhow::Result<()> {
    UnparsedPublicKey::new(algorithm, public_key)
        .verify(message, signature)
        .map_err(|_| anyhow::anyhow!("a signature made here did not verify"))
}

/// An aws-lc-rs error (which says nothing more) as what failed.
fn failed<E>(what: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |_| anyhow::anyhow!("{what}")
}

/// Measures every operation (about two seconds in all).
pub(crate) fn measure() -> anyhow::Result<Vec<SignatureCost>> {
    measure_scaled(1)
}

/// The same with `1 / divisor` of the repetitions (the unit test's quick run).
fn measure_scaled(divisor: u32) -> anyhow::Result<Vec<SignatureCost>> {
    let rng = SystemRandom::new();
    let message = vec![b'e'; MESSAGE_BYTES];
    let mut costs = Vec::new();
    let mut push = |operation, micros| costs.push(SignatureCost { operation, micros });

    let p256 = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(failed("cannot make a P-256 key"))?;
    let p256_signature = p256.sign(&rng, &message).map_err(failed("cannot sign"))?;
    let p256_public = p256.public_key().as_ref().to_vec();
    push(
        "ES256 sign",
        best_of_nine(1500 / divisor, || {
            p256.sign(&rng, &message)
                .map(drop)
                .map_err(failed("cannot sign"))
        })?,
    );
    let parsed = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &p256_public)
        .parse()
        .map_err(failed("cannot parse a P-256 key"))?;
    push(
        "ES256 verify (key parsed once)",
        best_of_nine(600 / divisor, || {
            parsed
                .verify_sig(&message, p256_signature.as_ref())
                .map_err(failed("a signature made here did not verify"))
        })?,
    );
    push(
        "ES256 verify (key parsed each time)",
        best_of_nine(600 / divisor, || {
            verifies(
                &signature::ECDSA_P256_SHA256_FIXED,
                &p256_public,
                &message,
                p256_signature.as_ref(),
            )
        })?,
    );

    let ed25519 = Ed25519KeyPair::generate().map_err(failed("cannot make an Ed25519 key"))?;
    let ed25519_signature = ed25519.sign(&message);
    push(
        "EdDSA sign",
        best_of_nine(3000 / divisor, || {
            std::hint::black_box(ed25519.sign(&message));
            Ok(())
        })?,
    );
    push(
        "EdDSA verify",
        best_of_nine(600 / divisor, || {
            verifies(
                &signature::ED25519,
                ed25519.public_key().as_ref(),
                &message,
                ed25519_signature.as_ref(),
            )
        })?,
    );

    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(failed("cannot make an RSA key"))?;
    let mut rsa_signature = vec![0; rsa.public_modulus_len()];
    push(
        "RS256 sign",
        best_of_nine(100 / divisor, || {
            rsa.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                &message,
                &mut rsa_signature,
            )
            .map_err(failed("cannot sign"))
        })?,
    );
    push(
        "RS256 verify",
        best_of_nine(1500 / divisor, || {
            verifies(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                rsa.public_key().as_ref(),
                &message,
                &rsa_signature,
            )
        })?,
    );
    Ok(costs)
}

/// The line the report prints.
pub(crate) fn summary(costs: &[SignatureCost]) -> String {
    let each: Vec<String> = costs
        .iter()
        .map(|c| format!("{} {:.1} µs", c.operation, c.micros))
        .collect();
    format!(
        "signatures, CPU each on one core of this machine: {}",
        each.join(" · ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_measured_and_costs_something() {
        let costs = measure_scaled(100).unwrap();
        let operations: Vec<_> = costs.iter().map(|c| c.operation).collect();
        assert_eq!(operations.len(), 7, "{operations:?}");
        assert!(costs.iter().all(|c| c.micros.is_finite() && c.micros > 0.0));
        assert!(summary(&costs).contains("ES256 verify (key parsed once) "));
    }
}
