//! PaiNN's interaction blocks in the burn model: the equivariant forward pass (scalar and
//! vector features, messages and updates) and its explicit backward pass for the forces.

use super::*;

impl Model {
    /// One PaiNN block (message, then update) on scalar features q and vector features μ.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn painn_forward(
        &self,
        p: PainnParams,
        q: Tensor<2>,
        mu: [Tensor<2>; 3],
        rbf: &Radial,
        r: &Tensor<2>,
        graph: &GraphTensors,
        n: usize,
        ctx: &Ctx,
    ) -> (PainnCache, Tensor<2>, [Tensor<2>; 3]) {
        let f = self.config.features;
        // Message: φ_j = Dense(3F)(SiLU(Dense(F)(q_j))), W = Dense(3F)(g(d)) f_c(d), (a, b, c) = φ ⊙ W.
        let phi_a = self.dense(p.phi1, q.clone());
        let phi_dst = self
            .dense(p.phi2, silu(phi_a.clone()))
            .select(0, graph.dst.clone());
        let lin = self.dense(p.filter, rbf.g.clone());
        let w = lin.clone() * rbf.fc.clone();
        let prod = phi_dst.clone() * w.clone();
        let (a, b, c) = (
            prod.clone().narrow(1, 0, f),
            prod.clone().narrow(1, f, f),
            prod.narrow(1, 2 * f, f),
        );
        let q = q + scatter_add(a, &graph.src, n, ctx);
        let rhat: [Tensor<2>; 3] =
            [0, 1, 2].map(|k| r.clone().narrow(1, k, 1) / rbf.distance.clone());
        let mu_dst: [Tensor<2>; 3] = [0, 1, 2].map(|k| mu[k].clone().select(0, graph.dst.clone()));
        let mu: [Tensor<2>; 3] = [0, 1, 2].map(|k| {
            mu[k].clone()
                + scatter_add(
                    b.clone() * rhat[k].clone() + c.clone() * mu_dst[k].clone(),
                    &graph.src,
                    n,
                    ctx,
                )
        });
        // Update: U = μ V_U, V = μ V_V, (s1, s2, s3) = MLP([q, |V|]); μ += s2 U; q += s1 + s3 <U, V>.
        let u: [Tensor<2>; 3] = [0, 1, 2].map(|k| self.dense(p.vec_u, mu[k].clone()));
        let v: [Tensor<2>; 3] = [0, 1, 2].map(|k| self.dense(p.vec_v, mu[k].clone()));
        let norm_v = (v[0].clone() * v[0].clone()
            + v[1].clone() * v[1].clone()
            + v[2].clone() * v[2].clone())
        .add_scalar(1e-8)
        .sqrt();
        let upd_a = self.dense(p.upd1, Tensor::cat(vec![q.clone(), norm_v.clone()], 1));
        let o = self.dense(p.upd2, silu(upd_a.clone()));
        let (s1, s2, s3) = (
            o.clone().narrow(1, 0, f),
            o.clone().narrow(1, f, f),
            o.narrow(1, 2 * f, f),
        );
        let dot =
            u[0].clone() * v[0].clone() + u[1].clone() * v[1].clone() + u[2].clone() * v[2].clone();
        let q = q + s1 + s3.clone() * dot.clone();
        let mu_new: [Tensor<2>; 3] = [0, 1, 2].map(|k| mu[k].clone() + s2.clone() * u[k].clone());
        let cache = PainnCache {
            phi_a,
            phi_dst,
            lin,
            w,
            b,
            c,
            mu_dst,
            rhat,
            u,
            v,
            norm_v,
            upd_a,
            s2,
            s3,
            dot,
        };
        (cache, q, mu_new)
    }

    /// The transpose of one PaiNN block: (dL/dq, dL/dμ) before it from those after it, and the
    /// block's dL/dd [E, 1] and dL/dr̂ [E, 3 columns].
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub(super) fn painn_backward(
        &self,
        p: PainnParams,
        c: &PainnCache,
        g_q: Tensor<2>,
        g_mu: [Tensor<2>; 3],
        rbf: &Radial,
        graph: &GraphTensors,
        n: usize,
        ctx: &Ctx,
    ) -> (Tensor<2>, [Tensor<2>; 3], Tensor<2>, [Tensor<2>; 3]) {
        // Update.
        let g_s1 = g_q.clone();
        let g_s3 = g_q.clone() * c.dot.clone();
        let g_dot = g_q.clone() * c.s3.clone();
        let g_s2 = g_mu[0].clone() * c.u[0].clone()
            + g_mu[1].clone() * c.u[1].clone()
            + g_mu[2].clone() * c.u[2].clone();
        let g_o = Tensor::cat(vec![g_s1, g_s2, g_s3], 1);
        let g_upd_a = self.dense_back(p.upd2, g_o) * silu_derivative(c.upd_a.clone());
        let g_h = self.dense_back(p.upd1, g_upd_a);
        let f = self.config.features;
        let mut g_q = g_q + g_h.clone().narrow(1, 0, f);
        let g_norm = g_h.narrow(1, f, f) / c.norm_v.clone();
        let g_mu: [Tensor<2>; 3] = [0, 1, 2].map(|k| {
            let g_u = g_mu[k].clone() * c.s2.clone() + g_dot.clone() * c.v[k].clone();
            let g_v = g_dot.clone() * c.u[k].clone() + g_norm.clone() * c.v[k].clone();
            g_mu[k].clone() + self.dense_back(p.vec_u, g_u) + self.dense_back(p.vec_v, g_v)
        });
        // Message: Δq_i = Σ a, Δμ_i = Σ (b r̂ + c μ_dst).
        let g_a = g_q.clone().select(0, graph.src.clone());
        let g_mu_src: [Tensor<2>; 3] =
            [0, 1, 2].map(|k| g_mu[k].clone().select(0, graph.src.clone()));
        let g_b = g_mu_src[0].clone() * c.rhat[0].clone()
            + g_mu_src[1].clone() * c.rhat[1].clone()
            + g_mu_src[2].clone() * c.rhat[2].clone();
        let g_c = g_mu_src[0].clone() * c.mu_dst[0].clone()
            + g_mu_src[1].clone() * c.mu_dst[1].clone()
            + g_mu_src[2].clone() * c.mu_dst[2].clone();
        let g_dir: [Tensor<2>; 3] =
            [0, 1, 2].map(|k| (g_mu_src[k].clone() * c.b.clone()).sum_dim(1));
        let g_mu: [Tensor<2>; 3] = [0, 1, 2].map(|k| {
            g_mu[k].clone() + scatter_add(g_mu_src[k].clone() * c.c.clone(), &graph.dst, n, ctx)
        });
        let g_prod = Tensor::cat(vec![g_a, g_b, g_c], 1);
        let g_phi = scatter_add(g_prod.clone() * c.w.clone(), &graph.dst, n, ctx);
        g_q = g_q
            + self.dense_back(
                p.phi1,
                self.dense_back(p.phi2, g_phi) * silu_derivative(c.phi_a.clone()),
            );
        let g_w = g_prod * c.phi_dst.clone();
        let g_lin = g_w.clone() * rbf.fc.clone();
        let g_fc = (g_w * c.lin.clone()).sum_dim(1);
        let g_g = self.dense_back(p.filter, g_lin);
        let g_dist = (g_g * rbf.dg_dd.clone()).sum_dim(1) + g_fc * rbf.dfc_dd.clone();
        (g_q, g_mu, g_dist, g_dir)
    }
}
