//! Static files and uploads: `StaticFilesMiddleware` at `/static` over `CHIRP_STATIC_DIR` (default
//! the `examples/files/static` folder beside this file), `CompressionMiddleware` on, `GET /` the
//! upload form, and `POST /upload`: a `multipart/form-data` body of up to 100 MiB holding at
//! most [`MAX_FILES`] files and [`MAX_FIELDS`] other fields, each file streamed to a temporary
//! folder (`CHIRP_UPLOAD_DIR`, default `$TMPDIR/chirp-uploads`) while its SHA-256 is computed,
//! answered with `{"files": [{"field": ..., "filename": ..., "size": ..., "sha256": ...}]}`
//! (at most `MAX_FILES` entries, names cut to [`MAX_NAME`] characters). The files of an upload
//! are kept only once all of it has arrived within its limits: a refused upload leaves none.
//!
//! `/upload` is protected against cross-site requests by `CsrfMiddleware`: it needs the
//! session's token in the `X-CSRF-Token` header (the body is streamed to the handler, so the
//! middleware does not read a token from it). The form at `/` carries the token in a
//! `<meta name="csrf-token">` tag and sends it with `fetch`. The session cookie is signed with
//! `CHIRP_SECRET_KEY`, as in the other examples; without it, a random secret is made at start
//! (with a warning), and sessions end when the process does.
//!
//! ```text
//! cargo run --release --example files          # listens on CHIRP_ADDR, default 127.0.0.1:8000
//! token=$(curl -s -c jar http://127.0.0.1:8000/ | sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p')
//! curl -b jar -H "X-CSRF-Token: $token" -F file=@Cargo.toml http://127.0.0.1:8000/upload
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use chirp::html::escape_html;
use chirp::http::multipart::MultipartLimits;
use chirp::middleware::compression::CompressionMiddleware;
use chirp::middleware::csrf::{get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::sessions::SessionConfig;
use chirp::{App, BodyConfig, ConfigurationError, HttpError, Request, Response};
use sha2::{Digest, Sha256};

/// The most an upload may hold.
pub const UPLOAD_LIMIT: usize = 100 * 1024 * 1024;

/// The most files one upload may hold.
pub const MAX_FILES: usize = 10;

/// The most parts that are not files (the form has none; a few are tolerated).
pub const MAX_FIELDS: usize = 10;

/// The most characters of a field or file name repeated in the answer.
pub const MAX_NAME: usize = 255;

/// The app, for `main` and for the tests (`tests/uploads.rs`, `tests/security_uploads.rs`).
pub fn app(
    static_dir: &Path,
    upload_dir: PathBuf,
    limit: usize,
) -> Result<App, ConfigurationError> {
    std::fs::create_dir_all(&upload_dir).map_err(|e| {
        ConfigurationError::new(format!("upload folder {}: {e}", upload_dir.display()))
    })?;
    let limits = MultipartLimits::builder()
        .max_files(MAX_FILES)
        .max_fields(MAX_FIELDS)
        .max_parts(MAX_FILES + MAX_FIELDS)
        .max_field_size(64 * 1024)
        .max_fields_size(64 * 1024)
        .max_part_header_size(4 * 1024)
        .build()?;
    let mut app = App::new();
    app.add_middleware(CompressionMiddleware::new());
    app.add_middleware(StaticFilesMiddleware::new("/static", static_dir)?);
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(
        chirp::security::secret_key_from_env("CHIRP_SECRET_KEY")?,
    ))?);
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default())?);
    app.get("/", |_req: Request| async { form() });
    app.post("/upload", move |req: Request| {
        upload(req, upload_dir.clone(), limits)
    });
    app.route_body("/upload", BodyConfig::max(limit).streamed());
    Ok(app)
}

/// The upload form, with the session's CSRF token for `fetch` to send.
fn form() -> Result<Response, chirp::Error> {
    let token = escape_html(&get_csrf_token()?);
    Ok(Response::html(format!(
        r#"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="csrf-token" content="{token}">
<title>chirp files</title>
<link rel="stylesheet" href="/static/style.css">
<h1>Upload files</h1>
<form id="upload" method="post" action="/upload" enctype="multipart/form-data">
  <input type="file" name="file" multiple>
  <button>Upload</button>
</form>
<p>At most {MAX_FILES} files at once. The answer lists each file's size and SHA-256.
Static files: <a href="/static/hello.txt">hello.txt</a>.</p>
<pre id="answer"></pre>
<script>
document.getElementById("upload").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const answer = await fetch("/upload", {{
    method: "POST",
    headers: {{ "X-CSRF-Token": token }},
    body: new FormData(event.target),
  }});
  document.getElementById("answer").textContent = await answer.text();
}});
</script>
</html>
"#
    )))
}

/// One received file, as the answer lists it.
#[derive(serde::Serialize)]
struct Received {
    field: String,
    filename: String,
    size: u64,
    sha256: String,
}

/// At most [`MAX_NAME`] characters of a name sent by the client.
fn short(name: &str) -> String {
    name.chars().take(MAX_NAME).collect()
}

async fn upload(
    mut req: Request,
    dir: PathBuf,
    limits: MultipartLimits,
) -> Result<Response, HttpError> {
    let mut form = req.multipart_with(limits)?;
    // Kept only once the whole upload has arrived: dropped (deleted) on any error.
    let mut files = Vec::new();
    while let Some(mut field) = form.next_field().await? {
        let Some(filename) = field.file_name().map(short) else {
            continue; // a plain form field: not a file (skipped, within MAX_FIELDS)
        };
        let name = short(field.name().unwrap_or_default());
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
        let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        files.push((
            stored,
            Received {
                field: name,
                filename,
                size,
                sha256,
            },
        ));
    }
    let mut received = Vec::with_capacity(files.len());
    for (stored, file) in files {
        stored
            .keep()
            .map_err(|e| HttpError::internal(format!("cannot keep the upload: {e}")))?;
        received.push(file);
    }
    Ok(Response::json(&serde_json::json!({ "files": received })))
}

#[allow(dead_code)] // the tests include this file for `app` alone
#[tokio::main]
async fn main() -> Result<(), chirp::Error> {
    // The app's warnings (a random secret, a refused upload) and the server's, printed.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
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
