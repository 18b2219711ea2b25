//! Applies a directory of refinery migrations to a database with plain refinery and prints the
//! wall time in milliseconds: the baseline bench/migrate-bench.sh compares cutover against.
//! usage: refinery-compare DIR URL

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (dir, url) = (args.next().expect("DIR"), args.next().expect("URL"));
    let t = std::time::Instant::now();
    let migrations = refinery::load_sql_migrations(&dir).expect("migrations load");
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connects");
    tokio::spawn(conn);
    refinery::Runner::new(&migrations).run_async(&mut client).await.expect("migrations apply");
    println!("{:.1}", t.elapsed().as_secs_f64() * 1000.0);
}
