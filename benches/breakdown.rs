// temporary experiment
use std::path::Path;
use std::time::Instant;
use wasmtpd::config;
use wasmtpd::filter::host::FilterHost;
use wasmtpd::filter::{read_sources, EngineOptions, FilterEngine, Registry};
use wasmtime::Store;

const DIR: &str = env!("WASMTPD_FILTERS_DIR");

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let conf = format!(
        "filter \"baseline\" wasm \"{DIR}/hostile.wasm\" mode proceed\n\
         filter \"regex\" regex mail-from \"^spammer@\"\n\
         filter \"spamscore\" spamscore rule \"4 header ^Subject:.*(?i)pills\"\n"
    );
    let cfg = config::parse_str(&conf, Path::new("bench.conf")).unwrap();
    let engine = FilterEngine::new(EngineOptions { max_instances: 256, cache_dir: None }).unwrap();
    let registry = Registry::new(&cfg, read_sources(&cfg), engine, None).unwrap();
    for name in ["baseline", "regex", "spamscore"] {
        let f = registry.chain(name).pop().unwrap();
        let (mut t_store, mut t_inst, mut t_init, mut t_drop) = (0f64, 0f64, 0f64, 0f64);
        let n = 500;
        for _ in 0..n {
            let t = Instant::now();
            let host = FilterHost::new(f.shared.clone(), "s".into(), f.limits.memory, 10);
            let mut store = Store::new(f.engine(), host);
            store.limiter(|h| &mut h.limits);
            store.epoch_deadline_trap();
            store.set_epoch_deadline(1000);
            store.set_fuel(100_000_000).unwrap();
            let t1 = Instant::now();
            let b = f.pre.instantiate_async(&mut store).await.unwrap();
            let t2 = Instant::now();
            let _ = b.wasmtpd_filter_filter().call_init(&mut store).await.unwrap();
            let t3 = Instant::now();
            drop(store);
            let t4 = Instant::now();
            t_store += (t1 - t).as_secs_f64(); t_inst += (t2 - t1).as_secs_f64(); t_init += (t3 - t2).as_secs_f64(); t_drop += (t4 - t3).as_secs_f64();
        }
        let k = 1e6 / n as f64;
        println!("{name}: store {:.2} inst {:.2} init {:.2} drop {:.2}", t_store * k, t_inst * k, t_init * k, t_drop * k);
    }
}
