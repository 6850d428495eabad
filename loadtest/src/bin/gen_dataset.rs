//! Writes a synthetic dataset for the load tests.
//!
//! Usage: `gen-dataset OUT_DIR [POSITIVE [NEGATIVE [QUERIES]]]`
//! (defaults 10000000, 1000000, 1000000). Writes into OUT_DIR:
//! - `positive.csv` (`imei`), `negative.csv` (`imei,kind`): import files;
//! - `native-paths.txt`, `eir-paths.txt`: one request path per line in the query mix
//!   (90% registered, 4% stolen, 5% unknown, 1% malformed);
//! - `batch.json`: one `POST /v1/checks` body of 10,000 IMEIs from the same mix.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use imeidb_loadtest::dataset::{self, Mix, QueryKind};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = Path::new(args.get(1).map(String::as_str).unwrap_or("dataset"));
    let arg = |i: usize, default: usize| {
        args.get(i)
            .map(|s| s.replace('_', "").parse().expect("a number"))
            .unwrap_or(default)
    };
    let (positive, negative, queries) = (arg(2, 10_000_000), arg(3, 1_000_000), arg(4, 1_000_000));
    std::fs::create_dir_all(out)?;
    let started = std::time::Instant::now();
    let data = dataset::generate(42, positive, negative, (queries / 10).max(1000));

    let mut w = BufWriter::with_capacity(1 << 20, File::create(out.join("positive.csv"))?);
    writeln!(w, "imei")?;
    for imei in &data.positive {
        w.write_all(&imei.to_digits())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out.join("negative.csv"))?);
    writeln!(w, "imei,kind")?;
    for imei in &data.negative {
        w.write_all(&imei.to_digits())?;
        w.write_all(b",stolen\n")?;
    }
    w.flush()?;

    let mix = dataset::queries(&data, &Mix::default(), queries, 42);
    let text = |imei: Option<imeidb::imei::Imei>| match imei {
        Some(imei) => imei.to_string(),
        None => "35209900000000x".to_owned(),
    };
    let mut native = BufWriter::new(File::create(out.join("native-paths.txt"))?);
    let mut eir = BufWriter::new(File::create(out.join("eir-paths.txt"))?);
    for (_, imei) in &mix {
        let imei = text(*imei);
        writeln!(native, "/v1/imeis/{imei}/status")?;
        writeln!(eir, "/n5g-eir-eic/v1/equipment-status?pei=imei-{imei}")?;
    }
    native.flush()?;
    eir.flush()?;
    let batch: Vec<String> = mix
        .iter()
        .take(10_000)
        .map(|(_, imei)| text(*imei))
        .collect();
    std::fs::write(
        out.join("batch.json"),
        format!("{{\"imeis\":[\"{}\"]}}", batch.join("\",\"")),
    )?;
    let kinds = |k: QueryKind| mix.iter().filter(|(kind, _)| *kind == k).count();
    eprintln!(
        "wrote {} positive, {} negative, {} queries ({} registered, {} stolen, {} unknown, {} malformed) to {} in {:.1} s",
        data.positive.len(),
        data.negative.len(),
        mix.len(),
        kinds(QueryKind::Registered),
        kinds(QueryKind::Stolen),
        kinds(QueryKind::Unknown),
        kinds(QueryKind::Malformed),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
