// Morse (src/potential/morse.rs). Rows: c0 = (cutsq, D0, α, r0), c1 = (2 D0 α, shift offset, 0, 0).

fn pair_force(c0: vec4<f32>, c1: vec4<f32>, r2: f32) -> f32 {
    let r = sqrt(r2);
    let dexp = exp(-c0.z * (r - c0.w));
    return c1.x * (dexp * dexp - dexp) / r;
}

fn pair_energy(c0: vec4<f32>, c1: vec4<f32>, r2: f32) -> f32 {
    let r = sqrt(r2);
    let dexp = exp(-c0.z * (r - c0.w));
    return c0.y * (dexp * dexp - 2.0 * dexp) - c1.y;
}
