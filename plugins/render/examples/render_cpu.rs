//! Renders a scene with the CPU reference tracer to a PFM (for comparisons
//! with other renderers): `cargo run --release -p render --example render_cpu -- DIR SCENE PARAMS_JSON OUT.pfm`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, file, params, out] = args.as_slice() else {
        return Err("usage: render_cpu DIR SCENE PARAMS_JSON OUT.pfm".into());
    };
    let params = render::Params::from_json(params)?;
    let read = render::scene::dir_reader(std::path::Path::new(dir));
    let prepared = render::prepare(&params, 0, file, &read)?;
    let started = std::time::Instant::now();
    let px = render::cpu::render(&prepared.data, &prepared.view);
    println!("OURS render_s={:.3}", started.elapsed().as_secs_f64());
    std::fs::write(
        out,
        render::image::encode_pfm(prepared.view.width, prepared.view.height, &px),
    )?;
    Ok(())
}
