// Mean squared error of (pred + base) against the target `truth`, over all M elements,
// with its gradient dL/dpred = 2 (pred + base - target) / M. `base` is the
// bicubic upsample the network's output is a residual on. The loss is
// summed per workgroup (tree reduction), then `finish` sums the partial
// sums in one workgroup: a fixed order, so the same bits every run.

@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> base: array<f32>;
@group(0) @binding(2) var<storage, read> truth: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;

var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64)
fn mse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
       @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = arrayLength(&pred);
    let i = flat(gid, groups);
    var sq = 0.0;
    if i < m {
        let d = pred[i] + base[i] - truth[i];
        grad[i] = 2.0 * d / f32(m);
        sq = d * d;
    }
    scratch[lid] = sq;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if lid < s { scratch[lid] += scratch[lid + s]; }
        workgroupBarrier();
    }
    if lid == 0u { partials[wg.x + wg.y * groups.x] = scratch[0]; }
}
