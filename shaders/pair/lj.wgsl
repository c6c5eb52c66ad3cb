// Lennard-Jones 12-6 (src/potential/lj.rs). Rows: c0 = (cutsq, 48 ε σ^12, 24 ε σ^6, 0),
// c1 = (4 ε σ^12, 4 ε σ^6, shift offset, 0).

fn pair_force(c0: vec4<f32>, c1: vec4<f32>, r2: f32) -> f32 {
    let r2inv = 1.0 / r2;
    let r6inv = r2inv * r2inv * r2inv;
    return r6inv * (c0.y * r6inv - c0.z) * r2inv;
}

fn pair_energy(c0: vec4<f32>, c1: vec4<f32>, r2: f32) -> f32 {
    let r2inv = 1.0 / r2;
    let r6inv = r2inv * r2inv * r2inv;
    return r6inv * (c1.x * r6inv - c1.y) - c1.z;
}
