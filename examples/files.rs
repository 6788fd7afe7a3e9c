//! Static files and uploads: `StaticFilesMiddleware` at `/static` over `CHIRP_STATIC_DIR` (default the
//! `examples/files/static` folder beside this file), `CompressionMiddleware` on, `GET /` the upload form,
//! and `POST /upload`: a `multipart/form-data` body of up to 100 MiB, each file part streamed
//! to a temporary folder (`CHIRP_UPLOAD_DIR`, default `$TMPDIR/chirp-uploads`) while its
//! SHA-256 is computed, answered with
//! `{"files": [{"field": ..., "filename": ..., "size": ..., "sha256": ...}]}`.
//!
//! ```text
//! cargo run --release --example files          # listens on CHIRP_ADDR, default 127.0.0.1:8000
//! curl -F file=@Cargo.toml http://127.0.0.1:8000/upload
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use chirp::middleware::compression::CompressionMiddleware;
use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::{App, BodyConfig, ConfigurationError, HttpError, Request, Response};
use sha2::{Digest, Sha256};

/// The most an upload may hold.
pub const UPLOAD_LIMIT: usize = 100 * 1024 * 1024;

/// The app, for `main` and for the tests (`tests/uploads.rs`).
pub fn app(
    static_dir: &Path,
    upload_dir: PathBuf,
    limit: usize,
) -> Result<App, ConfigurationError> {
    std::fs::create_dir_all(&upload_dir).map_err(|e| {
        ConfigurationError::new(format!("upload folder {}: {e}", upload_dir.display()))
    })?;
    let mut app = App::new();
    app.add_middleware(CompressionMiddleware::new());
    app.add_middleware(StaticFilesMiddleware::new("/static", static_dir)?);
    app.route("/", |_req: Request| async {
        Response::redirect("/static/index.html")
    });
    app.post("/upload", move |req: Request| {
        upload(req, upload_dir.clone())
    });
    app.route_body("/upload", BodyConfig::max(limit).streamed());
    Ok(app)
}

/// One received file, as the answer lists it.
#[derive(serde::Serialize)]
struct Received {
    field: String,
    filename: String,
    size: u64,
    sha256: String,
}

async fn upload(mut req: Request, dir: PathBuf) -> Result<Response, HttpError> {
    let mut form = req.multipart()?;
    let mut files = Vec::new();
    while let Some(mut field) = form.next_field().await? {
        let Some(filename) = field.file_name().map(str::to_owned) else {
            continue; // a plain form field: not a file
        };
        let name = field.name().unwrap_or_default().to_owned();
        // Stored under a name of our own: the client's file name is never a path.
        let mut stored = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&dir)
            .map_err(|e| HttpError::internal(format!("cannot store the upload: {e}")))?;
        let (mut size, mut hash) = (0u64, Sha256::new());
        while let Some(chunk) = field.chunk().await? {
            size += chunk.len() as u64;
            hash.update(&chunk);
            stored
                .write_all(&chunk)
                .map_err(|e| HttpError::internal(format!("cannot store the upload: {e}")))?;
        }
        stored
            .keep()
            .map_err(|e| HttpError::internal(format!("cannot keep the upload: {e}")))?;
        let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        files.push(Received {
            field: name,
            filename,
            size,
            sha256,
        });
    }
    Ok(Response::json(&serde_json::json!({ "files": files })))
}

#[allow(dead_code)] // the tests include this file for `app` alone
#[tokio::main]
async fn main() -> Result<(), chirp::Error> {
    let static_dir = std::env::var_os("CHIRP_STATIC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/files/static"));
    let upload_dir = std::env::var_os("CHIRP_UPLOAD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("chirp-uploads"));
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!(
        "chirp files on http://{addr}: /static from {}, uploads to {}",
        static_dir.display(),
        upload_dir.display()
    );
    app(&static_dir, upload_dir, UPLOAD_LIMIT)?.run(addr).await
}
