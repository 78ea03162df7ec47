// 2-D convolution, stride 1, zero "same" padding (K odd), NCHW f32, and
// its gradients. Weights [COUT, CIN, K, K] and biases [COUT] live in one
// flat parameter array at W_OFF and B_OFF; gradients go to the same offsets
// of a flat gradient array. `dims` = [batch, height, width]. Every sum runs
// in a fixed order, so results are the same bits run after run on one
// adapter (training resumes reproduce uninterrupted runs).

override CIN: u32 = 1u;
override COUT: u32 = 1u;
override K: u32 = 3u;
override W_OFF: u32 = 0u;
override B_OFF: u32 = 0u;

// The three entry points share one binding layout:
//   forward:     one = params, two = x,     out = y
//   grad_input:  one = params, two = dL/dy, out = dL/dx
//   grad_params: one = dL/dy,  two = x,     out = grads (flat)
@group(0) @binding(0) var<storage, read> dims: array<u32>;
@group(0) @binding(1) var<storage, read> one: array<f32>;
@group(0) @binding(2) var<storage, read> two: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// forward: y [n, COUT, h, w] from x [n, CIN, h, w].
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let n = dims[0];
    let h = dims[1];
    let w = dims[2];
    let i = flat(gid, groups);
    if i >= n * COUT * h * w { return; }
    let x = i % w;
    let y = (i / w) % h;
    let co = (i / (w * h)) % COUT;
    let b = i / (w * h * COUT);
    let pad = i32(K / 2u);
    var acc = one[B_OFF + co];
    for (var ci = 0u; ci < CIN; ci++) {
        let plane = (b * CIN + ci) * h;
        let wrow = W_OFF + (co * CIN + ci) * K * K;
        for (var ky = 0u; ky < K; ky++) {
            let sy = i32(y) + i32(ky) - pad;
            if sy < 0 || sy >= i32(h) { continue; }
            for (var kx = 0u; kx < K; kx++) {
                let sx = i32(x) + i32(kx) - pad;
                if sx < 0 || sx >= i32(w) { continue; }
                acc += one[wrow + ky * K + kx] * two[(plane + u32(sy)) * w + u32(sx)];
            }
        }
    }
    out[i] = acc;
}

// grad_input: dL/dx [n, CIN, h, w] from dL/dy [n, COUT, h, w].
@compute @workgroup_size(64)
fn grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let n = dims[0];
    let h = dims[1];
    let w = dims[2];
    let i = flat(gid, groups);
    if i >= n * CIN * h * w { return; }
    let x = i % w;
    let y = (i / w) % h;
    let ci = (i / (w * h)) % CIN;
    let b = i / (w * h * CIN);
    let pad = i32(K / 2u);
    var acc = 0.0;
    for (var co = 0u; co < COUT; co++) {
        let plane = (b * COUT + co) * h;
        let wrow = W_OFF + (co * CIN + ci) * K * K;
        for (var ky = 0u; ky < K; ky++) {
            let oy = i32(y) - i32(ky) + pad;
            if oy < 0 || oy >= i32(h) { continue; }
            for (var kx = 0u; kx < K; kx++) {
                let ox = i32(x) - i32(kx) + pad;
                if ox < 0 || ox >= i32(w) { continue; }
                acc += one[wrow + ky * K + kx] * two[(plane + u32(oy)) * w + u32(ox)];
            }
        }
    }
    out[i] = acc;
}

// Gradients of the weights and biases: one workgroup per weight (then one
// per bias), its 64 invocations summing strided parts of the batch and
// image, then a tree reduction in workgroup memory.

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn grad_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let n = dims[0];
    let h = dims[1];
    let w = dims[2];
    let e = wg.x + wg.y * groups.x;
    let weights = COUT * CIN * K * K;
    if e >= weights + COUT { return; }
    let hw = h * w;
    var acc = 0.0;
    // Each invocation takes whole rows (batch × height of them), so the
    // index arithmetic is per row, not per product.
    if e < weights {
        let kx = e % K;
        let ky = (e / K) % K;
        let ci = (e / (K * K)) % CIN;
        let co = e / (K * K * CIN);
        let pad = i32(K / 2u);
        // Columns x whose source column x + kx - pad is inside the image.
        let x_lo = u32(max(pad - i32(kx), 0));
        let x_hi = u32(min(i32(w) + pad - i32(kx), i32(w)));
        for (var row = lid; row < n * h; row += 64u) {
            let b = row / h;
            let y = row % h;
            let sy = i32(y) + i32(ky) - pad;
            if sy < 0 || sy >= i32(h) { continue; }
            let dy_row = (b * COUT + co) * hw + y * w;
            let x_row = (b * CIN + ci) * hw + u32(sy) * w + kx - u32(pad);
            for (var x = x_lo; x < x_hi; x++) {
                acc += one[dy_row + x] * two[x_row + x];
            }
        }
    } else {
        let co = e - weights;
        for (var row = lid; row < n * h; row += 64u) {
            let b = row / h;
            let dy_row = (b * COUT + co) * hw + (row % h) * w;
            for (var x = 0u; x < w; x++) {
                acc += one[dy_row + x];
            }
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if lid < s { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    if lid == 0u {
        if e < weights { out[W_OFF + e] = partial[0]; } else { out[B_OFF + e - weights] = partial[0]; }
    }
}
