package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

class AdamWTest {

    /** The formula of torch.optim.AdamW's docs, in double, for one scalar over a sequence of gradients. */
    private static double[] reference(double p, double[] grads, double[] lrs, double wd) {
        double m = 0, v = 0;
        double[] out = new double[grads.length];
        for (int t = 1; t <= grads.length; t++) {
            double g = grads[t - 1], lr = lrs[t - 1];
            p -= lr * wd * p;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            double mhat = m / (1 - Math.pow(0.9, t));
            double vhat = v / (1 - Math.pow(0.999, t));
            p -= lr * mhat / (Math.sqrt(vhat) + 1e-8);
            out[t - 1] = p;
        }
        return out;
    }

    @Test
    void oneAndTwoStepsMatchTheFormula() {
        float[] params = {0.5f, -1.25f, 2f, 0f, 3e-3f};
        float[][] grads = {{0.1f, -0.3f, 2.5f, 1e-4f, 0f}, {-0.2f, -0.1f, 0.5f, 0f, 7f}};
        double[] lrs = {1e-3, 5e-4};
        double wd = 0.01;
        AdamW adam = new AdamW(params.length, wd);
        float[] p = params.clone();
        for (int step = 0; step < 2; step++) {
            adam.step(p, grads[step], lrs[step]);
            assertThat(adam.stepCount()).isEqualTo(step + 1);
            for (int i = 0; i < p.length; i++) {
                double[] gs = {grads[0][i], grads[1][i]};
                double expected = reference(params[i], gs, lrs, wd)[step];
                assertThat((double) p[i]).as("param %d after step %d", i, step + 1)
                        .isCloseTo(expected, within(1e-6 * Math.max(1, Math.abs(expected))));
            }
        }
    }

    @Test
    void restoredStateContinuesIdentically() {
        float[] a = {1f, -2f, 0.5f};
        float[] g1 = {0.3f, 0.1f, -0.7f}, g2 = {-0.1f, 0.4f, 0.2f};
        AdamW straight = new AdamW(3, 1e-3);
        straight.step(a, g1, 1e-2);
        float[] b = a.clone();
        AdamW copy = new AdamW(3, 1e-3);
        copy.restore(straight.m().clone(), straight.v().clone(), straight.stepCount());
        straight.step(a, g2, 1e-2);
        copy.step(b, g2, 1e-2);
        assertThat(b).isEqualTo(a);
    }

    @Test
    void scheduleIsSetAtTheStartOfEachEpoch() {
        LrSchedule s = new LrSchedule(1e-3, 1e-4, 100);
        assertThat(s.lr(0)).isCloseTo(1e-3 - 9e-4 / 100, within(1e-15));
        assertThat(s.lr(49)).isCloseTo(1e-3 - 9e-4 / 2, within(1e-15));
        assertThat(s.lr(99)).isCloseTo(1e-4, within(1e-15));
        assertThat(new LrSchedule(3e-3, 1e-3, 1).lr(0)).isEqualTo(1e-3);
    }
}
