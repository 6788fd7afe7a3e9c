//! The criterion suite (`cargo bench`): request-head parsing, routing over a 50-route table,
//! session load + save (1 key and ~1 KiB), and an in-process request through a 3-middleware
//! chain. Times on these shared machines drift: compare runs made back to back, and use
//! ../shared/bench/instructions.sh for code-cost claims.

use std::hint::black_box;

use chirp::__bench::{parse_head, RouteTable};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::middleware::{from_fn, scoped};
use chirp::sessions::{get_session, Digest, SessionConfig, SessionData, Signer};
use chirp::{App, Method, Request, Response};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const WRK_HEAD: &[u8] = b"GET /json HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n";
const BROWSER_HEAD: &[u8] = b"GET /dashboard?tab=activity HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: chirp_session=eyJ2aXNpdHMiOjF9.aSSBAA.fpjhVsd7jfz22gZDECldJRfN_1HGA9trV7yldcnWo1c; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\r\n";

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, head) in [("wrk_head", WRK_HEAD), ("browser_head", BROWSER_HEAD)] {
        // Canonical targets: parsing leaves the buffer as it is, so one copy serves every run.
        let mut buf = head.to_vec();
        assert_eq!(parse_head(&mut buf), Some(head.len()));
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_head(black_box(&mut buf))));
    }
    g.finish();
}

fn route(c: &mut Criterion) {
    let mut table = RouteTable::default();
    for i in 0..10 {
        table.add(&format!("/api/v1/resource{i}"));
        table.add(&format!("/api/v1/resource{i}/{{id:int}}"));
        table.add(&format!("/api/v1/resource{i}/{{id:int}}/children"));
        table.add(&format!("/static/group{i}/{{path:path}}"));
        table.add(&format!("/users/{{user}}/item{i}"));
    }
    let mut g = c.benchmark_group("route_50");
    for (name, path) in [
        ("static", "/api/v1/resource7"),
        ("int_param", "/api/v1/resource7/123/children"),
        ("str_param", "/users/alice/item9"),
        ("catch_all", "/static/group3/css/site.css"),
        ("miss", "/api/v2/nothing"),
    ] {
        assert_eq!(table.lookup(path), name != "miss", "{path}");
        g.bench_function(name, |b| b.iter(|| table.lookup(black_box(path))));
    }
    g.finish();
}

fn session_data(bytes: usize) -> SessionData {
    let mut data = SessionData::new();
    data.insert("visits", 1).unwrap();
    let mut i = 0u64;
    while data.to_json().len() < bytes {
        // Varied values, so the ~1 KiB case does not compress away.
        let value = format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        data.insert(&format!("k{i}"), value).unwrap();
        i += 1;
    }
    data
}

fn session(c: &mut Criterion) {
    let signer = Signer::new(
        "peer-bench-fixed-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        &[],
        Digest::Sha256,
        "itsdangerous",
    );
    let mut g = c.benchmark_group("session_load_save");
    for (name, size) in [("1_key", 0), ("150_b", 150), ("1_kib", 1024)] {
        let data = session_data(size);
        let cookie = signer.dumps(&data, 1_764_000_000);
        g.bench_function(name, |b| {
            b.iter(|| {
                let (mut loaded, ts) = signer.loads(black_box(&cookie)).expect("valid cookie");
                loaded.insert("visits", 2).unwrap();
                signer.dumps(&loaded, ts + 1)
            })
        });
    }
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut app = App::new();
    app.add_middleware(from_fn(|req, next| async move {
        next.run(req).await.with_header("x-frame-options", "DENY")
    }));
    app.add_middleware(from_fn(|mut req: Request, next| async move {
        req.extensions_mut().insert(42u64);
        next.run(req).await
    }));
    app.add_middleware(scoped(
        "/dashboard",
        SessionMiddleware::new(SessionConfig::new(
            "peer-bench-fixed-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        ))
        .unwrap(),
    ));
    app.route("/", |_req: Request| async { "Hello, World!" });
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, chirp::Error>(Response::text(format!("Visits: {visits}")))
    });
    let service = app.build().unwrap();
    let cookie = {
        let res = rt.block_on(service.call(Request::new(Method::Get, "/dashboard")));
        res.header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let mut g = c.benchmark_group("in_process_3_middleware");
    g.bench_function("plaintext", |b| {
        b.iter_batched(
            || Request::new(Method::Get, "/").with_header("host", "bench"),
            |req| rt.block_on(service.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("dashboard", |b| {
        b.iter_batched(
            || Request::new(Method::Get, "/dashboard").with_header("cookie", &cookie),
            |req| rt.block_on(service.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, parse, route, session, end_to_end);
criterion_main!(benches);
