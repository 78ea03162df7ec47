// Adam over a flat parameter array, one invocation per parameter:
//   m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;  p ← p - lr_t·m / (√v + ε_t)
// with the bias corrections folded into lr_t = lr·√(1-β2^t)/(1-β1^t) and
// ε_t = ε·√(1-β2^t), computed by the caller in f64 for step t and passed
// in `hyper` = [lr_t, β1, β2, ε_t].

@group(0) @binding(0) var<storage, read> hyper: array<f32>;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= arrayLength(&params) { return; }
    let g = grads[i];
    let mi = hyper[1] * m[i] + (1.0 - hyper[1]) * g;
    let vi = hyper[2] * v[i] + (1.0 - hyper[2]) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = params[i] - hyper[0] * mi / (sqrt(vi) + hyper[3]);
}
