//! `nncheck`: the tensor layer's GPU kernels against its CPU reference, on
//! random data, through the real `gpu` capability. Each check's error is
//! reported as a summary metric `<check>` = max |gpu − cpu| / max |cpu|
//! (the e2e test `tests/e2e/ai.rs` holds the tolerances). Params:
//! `{"seed": 1}`.

use nn::cpu::{self, Adam, ConvShape, Dims};
use nn::graph::{Program, TrainingGraph};
use nn::kernels::{self, ConvKernels};
use nn::model::{self, Activation, Architecture, Layer};
use nn::rng::Counter;
use pictor_sdk::gpu::{self, Buffer, GpuError, Kernel, Usage};
use pictor_sdk::{Job, JobError, Plugin, Summary};

/// The `nncheck` plugin.
pub struct NnCheck;

fn random(n: usize, seed: u64, stream: u64) -> Vec<f64> {
    let c = Counter::new(seed, stream);
    (0..n as u64).map(|i| c.unit(i) * 2.0 - 1.0).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// max |gpu − cpu| / max |cpu|.
fn error(gpu: &[f32], cpu: &[f64]) -> f64 {
    if gpu.len() != cpu.len() {
        return f64::INFINITY;
    }
    let scale = cpu.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    gpu.iter()
        .zip(cpu)
        .map(|(&g, &c)| (f64::from(g) - c).abs())
        .fold(0.0, f64::max)
        / scale
}

fn buf(v: &[f64]) -> Result<Buffer<f32>, GpuError> {
    Buffer::from_slice(&f32s(v), Usage::STORAGE)
}

fn run(program: &Program) -> Result<(), GpuError> {
    gpu::submit(&program.commands()).map(|_| ())
}

/// conv2d forward and both gradients for one shape.
fn check_conv(
    seed: u64,
    d: Dims,
    s: ConvShape,
    out: &mut Vec<(String, f64)>,
) -> Result<(), GpuError> {
    let layer = Layer {
        shape: s,
        weight_offset: 3,
        bias_offset: 3 + s.cout * s.cin * s.k * s.k,
    };
    let n_params = layer.bias_offset + s.cout + 2;
    let params = random(n_params, seed, 1);
    let (w, b) = (
        &params[layer.weight_offset..layer.bias_offset],
        &params[layer.bias_offset..layer.bias_offset + s.cout],
    );
    let x = random(d.n * s.cin * d.plane(), seed, 2);
    let dy = random(d.n * s.cout * d.plane(), seed, 3);
    let dims = Buffer::from_slice(&[d.n as u32, d.h as u32, d.w as u32], Usage::STORAGE)?;
    let (p_buf, x_buf, dy_buf) = (buf(&params)?, buf(&x)?, buf(&dy)?);
    let y_buf = Buffer::<f32>::zeroed(dy.len(), Usage::STORAGE)?;
    let dx_buf = Buffer::<f32>::zeroed(x.len(), Usage::STORAGE)?;
    let g_buf = Buffer::<f32>::zeroed(n_params, Usage::STORAGE)?;
    let k = ConvKernels::new(&layer, true, false)?;
    let mut p = Program::default();
    let f = p.kernel(k.forward);
    p.push(
        f,
        &[
            dims.binding(),
            p_buf.binding(),
            x_buf.binding(),
            y_buf.binding(),
        ],
        kernels::per_element(dy.len()),
    )?;
    if let (Some(gi), Some(gp)) = (k.grad_input, k.grad_params) {
        let (gi, gp) = (p.kernel(gi), p.kernel(gp));
        p.push(
            gi,
            &[
                dims.binding(),
                p_buf.binding(),
                dy_buf.binding(),
                dx_buf.binding(),
            ],
            kernels::per_element(x.len()),
        )?;
        p.push(
            gp,
            &[
                dims.binding(),
                dy_buf.binding(),
                x_buf.binding(),
                g_buf.binding(),
            ],
            ConvKernels::grad_params_groups(&layer),
        )?;
    }
    run(&p)?;
    let name = format!("conv{}x{}_{}to{}", s.k, s.k, s.cin, s.cout);
    out.push((
        format!("{name}_forward"),
        error(&y_buf.read()?, &cpu::conv2d(&x, d, s, w, b)),
    ));
    out.push((
        format!("{name}_grad_input"),
        error(&dx_buf.read()?, &cpu::conv2d_grad_input(&dy, d, s, w)),
    ));
    let (dw, db) = cpu::conv2d_grad_params(&dy, &x, d, s);
    let g = g_buf.read()?;
    out.push((
        format!("{name}_grad_weight"),
        error(&g[layer.weight_offset..layer.bias_offset], &dw),
    ));
    out.push((
        format!("{name}_grad_bias"),
        error(&g[layer.bias_offset..layer.bias_offset + s.cout], &db),
    ));
    // The gradient kernel writes only its own layer's slots.
    out.push((
        format!("{name}_grad_untouched"),
        f64::from(g[0].abs() + g[n_params - 1].abs()),
    ));
    Ok(())
}

fn check_activation(
    seed: u64,
    act: Activation,
    out: &mut Vec<(String, f64)>,
) -> Result<(), GpuError> {
    let z = random(1000, seed, 10);
    let g = random(1000, seed, 11);
    let (fwd, bwd) = kernels::activation(act)?;
    let (a_buf, g_buf) = (buf(&z)?, buf(&g)?);
    let mut p = Program::default();
    let (f, b) = (p.kernel(fwd), p.kernel(bwd));
    p.push(f, &[a_buf.binding()], kernels::per_element(z.len()))?;
    p.push(
        b,
        &[a_buf.binding(), g_buf.binding()],
        kernels::per_element(z.len()),
    )?;
    run(&p)?;
    let a = cpu::activate(act, &z);
    out.push((format!("{}_forward", act.name()), error(&a_buf.read()?, &a)));
    // The backward pass used the GPU's own activation output.
    let a_gpu = f64s(&a_buf.read()?);
    out.push((
        format!("{}_backward", act.name()),
        error(&g_buf.read()?, &cpu::activate_grad(act, &a_gpu, &g)),
    ));
    Ok(())
}

fn check_shuffle(seed: u64, out: &mut Vec<(String, f64)>) -> Result<(), GpuError> {
    let (d, c, r) = (Dims { n: 2, h: 5, w: 3 }, 2usize, 3usize);
    let x = random(d.n * c * r * r * d.plane(), seed, 20);
    let g = random(x.len(), seed, 21);
    let (fwd, bwd) = kernels::shuffle(c as u32, r as u32, true)?;
    let dims = Buffer::from_slice(&[d.n as u32, d.h as u32, d.w as u32], Usage::STORAGE)?;
    let (x_buf, g_buf) = (buf(&x)?, buf(&g)?);
    let (y_buf, gx_buf) = (
        Buffer::<f32>::zeroed(x.len(), Usage::STORAGE)?,
        Buffer::<f32>::zeroed(x.len(), Usage::STORAGE)?,
    );
    let mut p = Program::default();
    let f = p.kernel(fwd);
    p.push(
        f,
        &[dims.binding(), x_buf.binding(), y_buf.binding()],
        kernels::per_element(x.len()),
    )?;
    if let Some(bwd) = bwd {
        let b = p.kernel(bwd);
        p.push(
            b,
            &[dims.binding(), g_buf.binding(), gx_buf.binding()],
            kernels::per_element(x.len()),
        )?;
    }
    run(&p)?;
    out.push((
        "pixel_shuffle".into(),
        error(&y_buf.read()?, &cpu::pixel_shuffle(&x, d, c, r)),
    ));
    out.push((
        "pixel_unshuffle".into(),
        error(&gx_buf.read()?, &cpu::pixel_unshuffle(&g, d, c, r)),
    ));
    Ok(())
}

fn check_loss(seed: u64, out: &mut Vec<(String, f64)>) -> Result<(), GpuError> {
    // More than one workgroup of partial sums, and a ragged last one.
    let m = 64 * 70 + 13;
    let (pred, base, truth) = (
        random(m, seed, 30),
        random(m, seed, 31),
        random(m, seed, 32),
    );
    let (p_buf, b_buf, t_buf) = (buf(&pred)?, buf(&base)?, buf(&truth)?);
    let grad = Buffer::<f32>::zeroed(m, Usage::STORAGE)?;
    let groups = kernels::per_element(m);
    let partials = Buffer::<f32>::zeroed((groups[0] * groups[1]) as usize, Usage::STORAGE)?;
    let count = Buffer::from_slice(&[m as f32], Usage::STORAGE)?;
    let loss = Buffer::<f32>::zeroed(1, Usage::STORAGE)?;
    let mut p = Program::default();
    let mse = p.kernel(Kernel::new(kernels::LOSS, "mse")?);
    let finish = p.kernel(Kernel::new(kernels::LOSS_FINISH, "finish")?);
    p.push(
        mse,
        &[
            p_buf.binding(),
            b_buf.binding(),
            t_buf.binding(),
            grad.binding(),
            partials.binding(),
        ],
        groups,
    )?;
    p.push(
        finish,
        &[partials.binding(), count.binding(), loss.binding()],
        [1, 1, 1],
    )?;
    run(&p)?;
    let (l, g) = cpu::mse(&pred, &base, &truth);
    out.push(("mse_loss".into(), error(&loss.read()?, &[l])));
    out.push(("mse_grad".into(), error(&grad.read()?, &g)));
    Ok(())
}

/// The whole network's gradients on the GPU vs the CPU, then one Adam
/// step, then a second step (moments carried).
fn check_network(seed: u64, out: &mut Vec<(String, f64)>) -> Result<(), GpuError> {
    for (arch, tag) in [
        (Architecture::espcn(2, &[8, 4], Activation::Tanh), "x2_tanh"),
        (Architecture::espcn(3, &[6], Activation::Relu), "x3_relu"),
    ] {
        let (batch, patch) = (3usize, 6usize);
        let d = Dims {
            n: batch,
            h: patch,
            w: patch,
        };
        let r2 = (arch.scale * arch.scale) as usize;
        let params = f64s(&arch.init(seed));
        let x = random(batch * patch * patch, seed, 40);
        let base = random(x.len() * r2, seed, 41);
        let target = random(x.len() * r2, seed, 42);
        let graph = TrainingGraph::new(&arch, batch, patch, &f32s(&params))?;
        let (loss, grads) = graph.gradients(&f32s(&x), &f32s(&base), &f32s(&target))?;
        let (cpu_loss, cpu_grads) =
            model::cpu_loss_and_grads(&arch, &params, &x, &base, &target, d);
        out.push((format!("network_{tag}_loss"), error(&[loss], &[cpu_loss])));
        out.push((format!("network_{tag}_grads"), error(&grads, &cpu_grads)));
        // Two Adam steps: the CPU follows with its own gradients.
        let adam = Adam {
            lr: 1e-2,
            ..Adam::default()
        };
        let (mut p, mut m, mut v) = (
            params.clone(),
            vec![0.0; params.len()],
            vec![0.0; params.len()],
        );
        for t in 1..=2 {
            graph.step(
                &f32s(&x),
                &f32s(&base),
                &f32s(&target),
                adam.hyper(adam.lr, t),
            )?;
            let (_, g) = model::cpu_loss_and_grads(&arch, &p, &x, &base, &target, d);
            adam.step(adam.lr, t, &mut p, &g, &mut m, &mut v);
        }
        let [gp, _, _] = graph.state()?;
        // Compare the updates (p − p0), which are what Adam computed.
        let gpu_delta: Vec<f32> = gp
            .iter()
            .zip(&params)
            .map(|(&a, &b)| (f64::from(a) - b) as f32)
            .collect();
        let cpu_delta: Vec<f64> = p.iter().zip(&params).map(|(a, b)| a - b).collect();
        out.push((
            format!("network_{tag}_adam_update"),
            error(&gpu_delta, &cpu_delta),
        ));
    }
    Ok(())
}

impl Plugin for NnCheck {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let seed = job.seed();
        let mut results = Vec::new();
        check_conv(
            seed,
            Dims { n: 2, h: 7, w: 9 },
            ConvShape {
                cin: 3,
                cout: 5,
                k: 3,
            },
            &mut results,
        )?;
        check_conv(
            seed,
            Dims { n: 1, h: 6, w: 5 },
            ConvShape {
                cin: 2,
                cout: 4,
                k: 5,
            },
            &mut results,
        )?;
        job.progress(0.3, "conv2d checked");
        for act in [Activation::Relu, Activation::Tanh] {
            check_activation(seed, act, &mut results)?;
        }
        check_shuffle(seed, &mut results)?;
        check_loss(seed, &mut results)?;
        job.progress(0.6, "element-wise kernels checked");
        check_network(seed, &mut results)?;
        let worst = results.iter().fold(0.0f64, |m, (_, e)| m.max(*e));
        let mut summary = Summary::new(format!(
            "{} checks, worst relative error {worst:.2e}",
            results.len()
        ));
        for (name, e) in results {
            summary = summary.metric(name, e);
        }
        Ok(summary)
    }
}

pictor_sdk::export_plugin!(NnCheck);
