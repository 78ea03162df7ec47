//! The network as GPU work: buffers, kernels and bind groups made once,
//! then each forward (inference) or training step is a single batched
//! submission of the same commands.

use std::time::Duration;

use pictor_sdk::gpu::{self, BindGroup, Buffer, Command, GpuError, Kernel, Usage};

use crate::kernels::{self, ConvKernels};
use crate::model::Architecture;

/// A fixed list of dispatches, submitted as one batch.
#[derive(Default)]
pub struct Program {
    kernels: Vec<Kernel>,
    steps: Vec<(usize, BindGroup, [u32; 3])>,
}

impl Program {
    /// Adds a kernel; returns its index for [`push`](Self::push).
    pub fn kernel(&mut self, kernel: Kernel) -> usize {
        self.kernels.push(kernel);
        self.kernels.len() - 1
    }

    /// Appends a dispatch of kernel `k` with `buffers` bound to `@group(0)`.
    pub fn push(
        &mut self,
        k: usize,
        buffers: &[gpu::Binding<'_>],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        let group = self.kernels[k].bind(0, buffers)?;
        self.steps.push((k, group, workgroups));
        Ok(())
    }

    /// The dispatches, in order.
    pub fn commands(&self) -> Vec<Command<'_>> {
        self.steps
            .iter()
            .map(|(k, group, wg)| self.kernels[*k].dispatch(&[group], *wg))
            .collect()
    }

    /// Number of dispatches.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no dispatches.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

fn storage(len: usize) -> Result<Buffer<f32>, GpuError> {
    Buffer::zeroed(len, Usage::STORAGE)
}

/// Training on batches of `batch` LR patches of `patch`×`patch` pixels.
pub struct TrainingGraph {
    /// The network.
    pub arch: Architecture,
    /// Patches per batch.
    pub batch: usize,
    /// LR patch side.
    pub patch: usize,
    params: Buffer<f32>,
    grads: Buffer<f32>,
    m: Buffer<f32>,
    v: Buffer<f32>,
    input: Buffer<f32>,
    base: Buffer<f32>,
    target: Buffer<f32>,
    loss: Buffer<f32>,
    hyper: Buffer<f32>,
    _intermediate: Vec<Buffer<f32>>,
    _dims: Buffer<u32>,
    forward_backward: Program,
    update: Program,
}

impl TrainingGraph {
    /// Sets up the buffers and kernels, with `params` as the starting point.
    pub fn new(
        arch: &Architecture,
        batch: usize,
        patch: usize,
        params: &[f32],
    ) -> Result<Self, GpuError> {
        let layers = arch.layers();
        let r = arch.scale as usize;
        let plane = patch * patch;
        let hr = batch * plane * r * r;
        let dims = Buffer::from_slice(&[batch as u32, patch as u32, patch as u32], Usage::STORAGE)?;
        let params_buf = Buffer::from_slice(params, Usage::STORAGE)?;
        let (grads, m, v) = (
            storage(params.len())?,
            storage(params.len())?,
            storage(params.len())?,
        );
        let input = storage(batch * plane)?;
        let (base, target, pred, g_pred) = (storage(hr)?, storage(hr)?, storage(hr)?, storage(hr)?);
        // Each layer's output (after activation for hidden layers) and the
        // gradient at that output.
        let outs: Vec<Buffer<f32>> = layers
            .iter()
            .map(|l| storage(batch * l.shape.cout * plane))
            .collect::<Result<_, _>>()?;
        let out_grads: Vec<Buffer<f32>> = layers
            .iter()
            .map(|l| storage(batch * l.shape.cout * plane))
            .collect::<Result<_, _>>()?;
        let mse_groups = kernels::per_element(hr);
        let partials = storage((mse_groups[0] * mse_groups[1]) as usize)?;
        let count = Buffer::from_slice(&[hr as f32], Usage::STORAGE)?;
        let loss = storage(1)?;
        let hyper = storage(4)?;

        let mut fb = Program::default();
        let convs: Vec<ConvKernels> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| ConvKernels::new(l, true, i == 0))
            .collect::<Result<_, _>>()?;
        let (act_f, act_b) = kernels::activation(arch.activation)?;
        let (act_f, act_b) = (fb.kernel(act_f), fb.kernel(act_b));
        let (shuf_f, shuf_b) = kernels::shuffle(1, arch.scale, true)?;
        let shuf_f = fb.kernel(shuf_f);
        let shuf_b = shuf_b.map(|k| fb.kernel(k));
        let mse = fb.kernel(Kernel::new(kernels::LOSS, "mse")?);
        let finish = fb.kernel(Kernel::new(kernels::LOSS_FINISH, "finish")?);
        let mut conv_ids = Vec::new();
        for c in convs {
            let f = fb.kernel(c.forward);
            let gi = c.grad_input.map(|k| fb.kernel(k));
            let gp = c.grad_params.map(|k| fb.kernel(k));
            conv_ids.push((f, gi, gp));
        }
        // Forward.
        for (i, layer) in layers.iter().enumerate() {
            let input_of = if i == 0 { &input } else { &outs[i - 1] };
            let n = batch * layer.shape.cout * plane;
            fb.push(
                conv_ids[i].0,
                &[
                    dims.binding(),
                    params_buf.binding(),
                    input_of.binding(),
                    outs[i].binding(),
                ],
                kernels::per_element(n),
            )?;
            if i + 1 < layers.len() {
                fb.push(act_f, &[outs[i].binding()], kernels::per_element(n))?;
            }
        }
        let last = layers.len() - 1;
        fb.push(
            shuf_f,
            &[dims.binding(), outs[last].binding(), pred.binding()],
            kernels::per_element(hr),
        )?;
        fb.push(
            mse,
            &[
                pred.binding(),
                base.binding(),
                target.binding(),
                g_pred.binding(),
                partials.binding(),
            ],
            mse_groups,
        )?;
        fb.push(
            finish,
            &[partials.binding(), count.binding(), loss.binding()],
            [1, 1, 1],
        )?;
        // Backward.
        if let Some(shuf_b) = shuf_b {
            fb.push(
                shuf_b,
                &[dims.binding(), g_pred.binding(), out_grads[last].binding()],
                kernels::per_element(hr),
            )?;
        }
        for (i, layer) in layers.iter().enumerate().rev() {
            let input_of = if i == 0 { &input } else { &outs[i - 1] };
            if let Some(gp) = conv_ids[i].2 {
                fb.push(
                    gp,
                    &[
                        dims.binding(),
                        out_grads[i].binding(),
                        input_of.binding(),
                        grads.binding(),
                    ],
                    ConvKernels::grad_params_groups(layer),
                )?;
            }
            if let Some(gi) = conv_ids[i].1 {
                let n = batch * layer.shape.cin * plane;
                fb.push(
                    gi,
                    &[
                        dims.binding(),
                        params_buf.binding(),
                        out_grads[i].binding(),
                        out_grads[i - 1].binding(),
                    ],
                    kernels::per_element(n),
                )?;
                fb.push(
                    act_b,
                    &[outs[i - 1].binding(), out_grads[i - 1].binding()],
                    kernels::per_element(n),
                )?;
            }
        }
        let mut update = Program::default();
        let adam = update.kernel(Kernel::new(kernels::ADAM, "step")?);
        update.push(
            adam,
            &[
                hyper.binding(),
                grads.binding(),
                params_buf.binding(),
                m.binding(),
                v.binding(),
            ],
            kernels::per_element(params.len()),
        )?;

        let mut intermediate = outs;
        intermediate.extend(out_grads);
        intermediate.extend([pred, g_pred, partials, count]);
        Ok(TrainingGraph {
            arch: arch.clone(),
            batch,
            patch,
            params: params_buf,
            grads,
            m,
            v,
            input,
            base,
            target,
            loss,
            hyper,
            _intermediate: intermediate,
            _dims: dims,
            forward_backward: fb,
            update,
        })
    }

    fn load_batch(&self, input: &[f32], base: &[f32], target: &[f32]) -> Result<(), GpuError> {
        let hr = self.base.len();
        if input.len() != self.input.len() || base.len() != hr || target.len() != hr {
            return Err(GpuError::InvalidArgument(format!(
                "batch of {} / {} / {} values; the graph takes {} / {hr} / {hr}",
                input.len(),
                base.len(),
                target.len(),
                self.input.len()
            )));
        }
        self.input.write(0, input)?;
        self.base.write(0, base)?;
        self.target.write(0, target)
    }

    /// One training step on a batch (LR input, bicubic base, HR target,
    /// each `[batch, 1, ·, ·]`) with Adam's `hyper` = [lr_t, β1, β2, ε_t];
    /// returns the batch's loss (before the update) and the GPU time.
    pub fn step(
        &self,
        input: &[f32],
        base: &[f32],
        target: &[f32],
        hyper: [f32; 4],
    ) -> Result<(f32, Duration), GpuError> {
        self.load_batch(input, base, target)?;
        self.hyper.write(0, &hyper)?;
        let mut commands = self.forward_backward.commands();
        commands.extend(self.update.commands());
        let took = gpu::submit(&commands)?;
        Ok((self.loss.read()?.first().copied().unwrap_or(f32::NAN), took))
    }

    /// The loss and every parameter's gradient on a batch, without updating
    /// (for checking the GPU against the CPU).
    pub fn gradients(
        &self,
        input: &[f32],
        base: &[f32],
        target: &[f32],
    ) -> Result<(f32, Vec<f32>), GpuError> {
        self.load_batch(input, base, target)?;
        gpu::submit(&self.forward_backward.commands())?;
        Ok((
            self.loss.read()?.first().copied().unwrap_or(f32::NAN),
            self.grads.read()?,
        ))
    }

    /// Parameters and Adam's two moments, as they are now.
    pub fn state(&self) -> Result<[Vec<f32>; 3], GpuError> {
        Ok([self.params.read()?, self.m.read()?, self.v.read()?])
    }

    /// Restores parameters and moments saved by [`state`](Self::state).
    pub fn restore(&self, params: &[f32], m: &[f32], v: &[f32]) -> Result<(), GpuError> {
        let n = self.params.len();
        if params.len() != n || m.len() != n || v.len() != n {
            return Err(GpuError::InvalidArgument(format!(
                "state of {}/{}/{} values for {n} parameters",
                params.len(),
                m.len(),
                v.len()
            )));
        }
        self.params.write(0, params)?;
        self.m.write(0, m)?;
        self.v.write(0, v)
    }

    /// Dispatches per training step.
    pub fn dispatches(&self) -> usize {
        self.forward_backward.len() + self.update.len()
    }
}

/// The forward pass on one LR luma tile of up to `max_w`×`max_h` pixels.
pub struct InferenceGraph {
    /// The network.
    pub arch: Architecture,
    /// Largest tile width.
    pub max_w: usize,
    /// Largest tile height.
    pub max_h: usize,
    dims: Buffer<u32>,
    input: Buffer<f32>,
    output: Buffer<f32>,
    _params: Buffer<f32>,
    _intermediate: Vec<Buffer<f32>>,
    program: Program,
}

impl InferenceGraph {
    /// Sets up the network with `params` for tiles up to `max_w`×`max_h`.
    pub fn new(
        arch: &Architecture,
        params: &[f32],
        max_w: usize,
        max_h: usize,
    ) -> Result<Self, GpuError> {
        let layers = arch.layers();
        let plane = max_w * max_h;
        let r = arch.scale as usize;
        let dims = Buffer::from_slice(&[1u32, max_h as u32, max_w as u32], Usage::STORAGE)?;
        let params_buf = Buffer::from_slice(params, Usage::STORAGE)?;
        let input = storage(plane)?;
        let output = storage(plane * r * r)?;
        let outs: Vec<Buffer<f32>> = layers
            .iter()
            .map(|l| storage(l.shape.cout * plane))
            .collect::<Result<_, _>>()?;
        let mut program = Program::default();
        let (act_f, _) = kernels::activation(arch.activation)?;
        let act_f = program.kernel(act_f);
        let (shuf_f, _) = kernels::shuffle(1, arch.scale, false)?;
        let shuf_f = program.kernel(shuf_f);
        for (i, layer) in layers.iter().enumerate() {
            let f = program.kernel(ConvKernels::new(layer, false, i == 0)?.forward);
            let input_of = if i == 0 { &input } else { &outs[i - 1] };
            let n = layer.shape.cout * plane;
            program.push(
                f,
                &[
                    dims.binding(),
                    params_buf.binding(),
                    input_of.binding(),
                    outs[i].binding(),
                ],
                kernels::per_element(n),
            )?;
            if i + 1 < layers.len() {
                program.push(act_f, &[outs[i].binding()], kernels::per_element(n))?;
            }
        }
        let last = layers.len() - 1;
        program.push(
            shuf_f,
            &[dims.binding(), outs[last].binding(), output.binding()],
            kernels::per_element(plane * r * r),
        )?;
        Ok(InferenceGraph {
            arch: arch.clone(),
            max_w,
            max_h,
            dims,
            input,
            output,
            _params: params_buf,
            _intermediate: outs,
            program,
        })
    }

    /// The network's residual (`[h·r, w·r]`, to add to the bicubic
    /// upsample) for one `w`×`h` LR luma tile.
    pub fn run(&self, tile: &[f32], w: usize, h: usize) -> Result<Vec<f32>, GpuError> {
        if w == 0 || h == 0 || w > self.max_w || h > self.max_h || tile.len() != w * h {
            return Err(GpuError::InvalidArgument(format!(
                "tile {w}×{h} with {} values; the graph takes up to {}×{}",
                tile.len(),
                self.max_w,
                self.max_h
            )));
        }
        self.dims.write(0, &[1, h as u32, w as u32])?;
        self.input.write(0, tile)?;
        gpu::submit(&self.program.commands())?;
        let r = self.arch.scale as usize;
        let mut out = self.output.read()?;
        out.truncate(w * h * r * r);
        Ok(out)
    }
}
