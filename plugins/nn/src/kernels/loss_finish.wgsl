// The mean of the MSE partial sums: `sums` from loss.wgsl's workgroups,
// summed in one workgroup in a fixed order, divided by the element count
// `count[0]` (as f32), written to loss[0].

@group(0) @binding(0) var<storage, read> sums: array<f32>;
@group(0) @binding(1) var<storage, read> count: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;

var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var j = lid; j < arrayLength(&sums); j += 64u) { acc += sums[j]; }
    scratch[lid] = acc;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if lid < s { scratch[lid] += scratch[lid + s]; }
        workgroupBarrier();
    }
    if lid == 0u { loss[0] = scratch[0] / count[0]; }
}
