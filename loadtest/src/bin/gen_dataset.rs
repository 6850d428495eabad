//! Writes a synthetic dataset for the load tests.
//!
//! Usage: `gen-dataset OUT_DIR [POSITIVE [NEGATIVE [QUERIES]]]`
//! (defaults 10000000, 1000000, 1000000). Writes into OUT_DIR:
//! - `positive.csv` (`imei`), `negative.csv` (`imei,kind`): import files for the offline
//!   CLI (and PostgreSQL's COPY, and Redis);
//! - `registrations.csv` (`imei,manufacturer,model,reference`): the positive list as an
//!   importer uploads it over the API;
//! - `queries.txt`: one IMEI per line in the query mix (90% registered, 4% stolen, 5%
//!   unknown, 1% malformed), what the load generator asks every system under test.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use imeidb::imei::Imei;
use imeidb_loadtest::dataset::{self, Mix, QueryKind};

/// What a malformed query looks like: a letter where a digit belongs.
const MALFORMED: &str = "35209900000000x";

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

    write_csv(&out.join("positive.csv"), "imei", &data.positive, "")?;
    write_csv(
        &out.join("negative.csv"),
        "imei,kind",
        &data.negative,
        ",stolen",
    )?;
    // the same devices as an importer's upload (POST /v1/registrations)
    write_csv(
        &out.join("registrations.csv"),
        "imei,manufacturer,model,reference",
        &data.positive,
        ",Acme Devices,X1,DI-2026-000123",
    )?;

    let mix = dataset::queries(&data, &Mix::default(), queries, 42);
    let mut w = BufWriter::new(File::create(out.join("queries.txt"))?);
    for (_, imei) in &mix {
        match imei {
            Some(imei) => w.write_all(&imei.to_digits())?,
            None => w.write_all(MALFORMED.as_bytes())?,
        }
        w.write_all(b"\n")?;
    }
    w.flush()?;
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

/// Writes `header`, then one line per IMEI: its 15 digits followed by `rest`.
fn write_csv(path: &Path, header: &str, imeis: &[Imei], rest: &str) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(w, "{header}")?;
    for imei in imeis {
        w.write_all(&imei.to_digits())?;
        w.write_all(rest.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
