package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.Fixtures;
import dev.trilens.io.Checkpoints;
import org.junit.jupiter.api.Test;

/** The published challenge model against PyTorch's numbers in golden.json. */
class GoldenForwardTest {

    @Test
    void logitsAndPatternMatchPyTorch() {
        Weights w = Checkpoints.load(Fixtures.challengeModel()).weights();
        JsonNode golden = Fixtures.golden();
        JsonNode seqs = golden.get("first_sequences");
        int B = seqs.size(), T = seqs.get(0).size();
        int[] tokens = new int[B * T];
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                tokens[b * T + t] = seqs.get(b).get(t).asInt();
            }
        }
        HookedTransformer.Run run = new HookedTransformer(w).runWithCache(tokens, B, T,
                n -> n.equals("blocks.0.attn.hook_pattern"));
        float[] expectedLogits = Fixtures.tensor(golden.get("logits_first_sequences"));
        assertThat(run.logits().data()).hasSameSizeAs(expectedLogits);
        // 1e-4 everywhere is below the float32 noise of this model: logits reach 123 and some attention rows are
        // nearly one-hot on scores near 300. Measured against golden.json, a float64 PyTorch forward has 2 of the 200
        // positions off by more than 1e-4 (worst 1.6e-4), and a float32 PyTorch rerun 5 (worst 5.3e-4). We hold
        // ourselves to that rerun: every logit within 1e-3, and at most 5 positions with any logit beyond 1e-4.
        float[] logits = run.logits().data();
        assertAllClose("logits", logits, expectedLogits, 1e-3, 0);
        int V = w.cfg.dVocab();
        int positionsOff = 0;
        for (int p = 0; p < B * T; p++) {
            for (int v = 0; v < V; v++) {
                if (Math.abs(logits[p * V + v] - expectedLogits[p * V + v]) > 1e-4) {
                    positionsOff++;
                    break;
                }
            }
        }
        assertThat(positionsOff).as("positions with a logit off by more than 1e-4").isLessThanOrEqualTo(5);

        float[] expectedPattern = Fixtures.tensor(golden.get("pattern_first_sequence"));
        float[] pattern = new float[T * T];
        System.arraycopy(run.cache().pattern(0).data(), 0, pattern, 0, T * T);
        assertAllClose("pattern", pattern, expectedPattern, 1e-4, 0);
    }

    /** One labelled worst case per tensor, as llm.c's test prints, but failing. */
    static void assertAllClose(String label, float[] actual, float[] expected, double atol, double rtol) {
        assertThat(actual).as(label).hasSameSizeAs(expected);
        double worstExcess = Double.NEGATIVE_INFINITY;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            double excess = Math.abs((double) actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
            if (!(excess <= worstExcess)) {
                worstExcess = excess;
                at = i;
            }
        }
        assertThat(worstExcess).as("%s: worst at flat index %d: got %s, expected %s (atol %s, rtol %s)", label, at,
                actual[at], expected[at], atol, rtol).isLessThanOrEqualTo(0);
    }
}
