//! The physical-limit probes of `make bench` (issue #9): how fast a plain-HTTP
//! registry on 127.0.0.1 can serve, or take in, a workload's blobs when the
//! client does nothing else (no hashing, no disk writes on the client side,
//! kept-alive connections, a fixed number of requests in flight).
//!
//! ```text
//! bench-limit get    HOST BLOBS.tsv [CONCURRENCY]          # GET every blob and manifest, discard the bodies
//! bench-limit ingest HOST BLOBS.tsv BLOB_DIR [CONCURRENCY] # POST+PUT every blob, mount it where else it is
//!                                                          # needed (MOUNTS.tsv beside BLOBS.tsv), then PUT
//!                                                          # manifests, then indexes
//! ```
//!
//! `BLOBS.tsv` is what `gen-workload` writes (`DIGEST SIZE REPOSITORY MEDIA_TYPE`);
//! `BLOB_DIR` holds the blobs by hex digest (an OCI layout's `blobs/sha256`).
//! It only talks to the host it is given and never writes a file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

struct Blob {
    digest: String,
    repo: String,
    media_type: String,
}

impl Blob {
    fn is_manifest(&self) -> bool {
        self.media_type.contains("manifest") || self.media_type.contains("index")
    }
    fn is_index(&self) -> bool {
        self.media_type.contains("index")
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench-limit get HOST BLOBS.tsv [N] | bench-limit ingest HOST BLOBS.tsv BLOB_DIR [N]";
    let (mode, host, tsv) = match args.as_slice() {
        [m, h, t, ..] => (m.as_str(), h.clone(), t.clone()),
        _ => bail!(usage),
    };
    let text = std::fs::read_to_string(&tsv).with_context(|| format!("reading {tsv}"))?;
    let blobs: Vec<Blob> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            match f.as_slice() {
                [d, _, r, m] => Ok(Blob {
                    digest: d.to_string(),
                    repo: r.to_string(),
                    media_type: m.to_string(),
                }),
                _ => bail!("{tsv}: not DIGEST SIZE REPOSITORY MEDIA_TYPE: {l:?}"),
            }
        })
        .collect::<Result<_>>()?;
    let (dir, n) = match mode {
        "get" => (None, args.get(3)),
        "ingest" => (
            Some(PathBuf::from(args.get(3).context(usage)?)),
            args.get(4),
        ),
        _ => bail!(usage),
    };
    let n: usize = n.map(|s| s.parse()).transpose()?.unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{host}/v2");
    rt.block_on(async move {
        match dir {
            None => {
                run(&blobs.iter().collect::<Vec<_>>(), n, |b| {
                    get(&client, &base, b)
                })
                .await
            }
            Some(dir) => {
                // Blobs, then manifests, then indexes: what a registry needs first.
                let pass = |f: &dyn Fn(&Blob) -> bool| blobs.iter().filter(|b| f(b)).collect();
                let passes: [Vec<&Blob>; 3] = [
                    pass(&|b| !b.is_manifest()),
                    pass(&|b| b.is_manifest() && !b.is_index()),
                    pass(&|b| b.is_index()),
                ];
                let [blob_pass, manifest_pass, index_pass] = passes;
                run(&blob_pass, n, |b| put(&client, &base, &dir, b)).await?;
                let mounts = mounts(&tsv)?;
                run(&mounts.iter().collect::<Vec<_>>(), n, |m| {
                    mount(&client, &base, m)
                })
                .await?;
                for p in [manifest_pass, index_pass] {
                    run(&p, n, |b| put(&client, &base, &dir, b)).await?;
                }
                Ok(())
            }
        }
    })
}

/// Run `f` on every blob, `n` at a time; the first error wins.
async fn run<'a, F, Fut>(blobs: &[&'a Blob], n: usize, f: F) -> Result<()>
where
    F: Fn(&'a Blob) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for b in blobs {
        let permit = sem.clone().acquire_owned().await?;
        let fut = f(b);
        tasks.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// `MOUNTS.tsv` beside `BLOBS.tsv`: (digest, repository, from).
fn mounts(blobs_tsv: &str) -> Result<Vec<Blob>> {
    let path = std::path::Path::new(blobs_tsv).with_file_name("mounts.tsv");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(|l| match l.split('\t').collect::<Vec<_>>().as_slice() {
            // `media_type` carries the source repository here.
            [d, r, from] => Ok(Blob {
                digest: d.to_string(),
                repo: r.to_string(),
                media_type: from.to_string(),
            }),
            _ => bail!("{}: not DIGEST REPOSITORY FROM: {l:?}", path.display()),
        })
        .collect()
}

/// Cross-repository mount of a blob the registry already holds.
fn mount(
    client: &reqwest::Client,
    base: &str,
    m: &Blob,
) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
    let req = client.post(format!(
        "{base}/{}/blobs/uploads/?mount={}&from={}",
        m.repo, m.digest, m.media_type
    ));
    let what = format!("mount {} into {} from {}", m.digest, m.repo, m.media_type);
    async move {
        let resp = req
            .send()
            .await?
            .error_for_status()
            .with_context(|| what.clone())?;
        if resp.status() != reqwest::StatusCode::CREATED {
            bail!(
                "{what}: the registry answered {} instead of 201 Created",
                resp.status()
            );
        }
        Ok(())
    }
}

fn get(
    client: &reqwest::Client,
    base: &str,
    b: &Blob,
) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
    let kind = if b.is_manifest() {
        "manifests"
    } else {
        "blobs"
    };
    let req = client
        .get(format!("{base}/{}/{kind}/{}", b.repo, b.digest))
        .header("Accept", &b.media_type);
    let what = format!("GET {} {}", b.repo, b.digest);
    async move {
        let mut resp = req
            .send()
            .await?
            .error_for_status()
            .with_context(|| what.clone())?;
        while resp.chunk().await.with_context(|| what.clone())?.is_some() {}
        Ok(())
    }
}

fn put(
    client: &reqwest::Client,
    base: &str,
    dir: &std::path::Path,
    b: &Blob,
) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
    let client = client.clone();
    let base = base.to_owned();
    let path = dir.join(b.digest.trim_start_matches("sha256:"));
    let (repo, digest, media_type, manifest) = (
        b.repo.clone(),
        b.digest.clone(),
        b.media_type.clone(),
        b.is_manifest(),
    );
    async move {
        let body = tokio::fs::read(&path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if manifest {
            client
                .put(format!("{base}/{repo}/manifests/{digest}"))
                .header("Content-Type", media_type)
                .body(body)
                .send()
                .await?
                .error_for_status()
                .with_context(|| format!("PUT manifest {repo} {digest}"))?;
            return Ok(());
        }
        let resp = client
            .post(format!("{base}/{repo}/blobs/uploads/"))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("POST upload {repo}"))?;
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("upload without a Location")?
            .to_owned();
        let mut url = reqwest::Url::parse(&format!("{base}/"))?.join(&loc)?;
        // BENCH_LIMIT_CHUNK=N: send blobs over N bytes as PATCH chunks of N
        // (what a chunking client does), to compare with one monolithic PUT.
        let chunk: Option<usize> = std::env::var("BENCH_LIMIT_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok());
        let mut rest = &body[..];
        if let Some(n) = chunk.filter(|n| *n > 0 && body.len() > *n) {
            let mut offset = 0usize;
            while rest.len() > n {
                let resp = client
                    .patch(url.clone())
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", format!("{}-{}", offset, offset + n - 1))
                    .body(rest[..n].to_vec())
                    .send()
                    .await?
                    .error_for_status()
                    .with_context(|| format!("PATCH blob {repo} {digest}"))?;
                let loc = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .context("PATCH without a Location")?
                    .to_owned();
                url = reqwest::Url::parse(&format!("{base}/"))?.join(&loc)?;
                offset += n;
                rest = &rest[n..];
            }
        }
        url.query_pairs_mut().append_pair("digest", &digest);
        client
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .body(rest.to_vec())
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("PUT blob {repo} {digest}"))?;
        Ok(())
    }
}
