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
    void fourLargeStepsTrackTheFormulaClosely() {
        // steps of ~0.1 so that float rounding (~1e-7 of a weight) is far below the 1e-5 of a step checked here; a
        // gradient of 1e-8, the size of eps, shows where eps sits: it halves that weight's first step
        float[] params = {0.5f, -1.25f, 2f, 0.3f, 1f};
        float[][] grads = {{0.1f, -0.3f, 2.5f, 1e-8f, 0f}, {-0.2f, -0.1f, 0.5f, 1e-8f, 7f},
            {0.05f, 0.4f, -1f, 1e-8f, -3f}, {0.3f, -0.2f, 0.1f, 1e-8f, 0.5f}};
        double[] lrs = {0.1, 0.08, 0.06, 0.04};
        for (double wd : new double[] {0, 0.5}) {
            AdamW adam = new AdamW(params.length, wd);
            float[] p = params.clone();
            for (int step = 0; step < grads.length; step++) {
                float[] before = p.clone();
                adam.step(p, grads[step], lrs[step]);
                for (int i = 0; i < p.length; i++) {
                    double[] gs = new double[grads.length];
                    for (int t = 0; t < gs.length; t++) {
                        gs[t] = grads[t][i];
                    }
                    double expected = reference(params[i], gs, lrs, wd)[step];
                    double expectedStep = expected - (step == 0 ? params[i] : reference(params[i], gs, lrs, wd)[step - 1]);
                    assertThat((double) p[i] - before[i]).as("step of param %d at step %d, wd %s", i, step + 1, wd)
                            .isCloseTo(expectedStep, within(1e-5 * Math.abs(expectedStep) + 1e-6));
                }
            }
        }
        // the tiny gradient's first step is lr * g / (|g| + eps) = lr / 2
        AdamW adam = new AdamW(1, 0);
        float[] p = {0f};
        adam.step(p, new float[] {1e-8f}, 0.1);
        assertThat((double) p[0]).isCloseTo(-0.05, within(1e-6));
    }

    @Test
    void weightDecayMustBeANonNegativeNumber() {
        for (double wd : new double[] {-1e-3, Double.NaN}) {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> new AdamW(3, wd))
                    .isInstanceOf(IllegalArgumentException.class).hasMessage("weight decay must be >= 0, got " + wd);
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

        // the state of an optimizer that has taken no step yet is a valid one to restore
        float[] c = {1f, -2f, 0.5f}, d = c.clone();
        AdamW fresh = new AdamW(3, 1e-3);
        AdamW restored = new AdamW(3, 1e-3);
        restored.restore(new float[3], new float[3], 0);
        fresh.step(c, g1, 1e-2);
        restored.step(d, g1, 1e-2);
        assertThat(d).isEqualTo(c);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> restored.restore(new float[3], new float[3], -1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at step -1");
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
