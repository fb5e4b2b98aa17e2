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
        // Logits reach 123 and the attention is nearly one-hot, so float32 rounding alone moves them by ~1e-3:
        // golden.json's own values differ from a float64 forward by 1.6e-4 and from another float32 PyTorch run
        // by 5e-4. Hence torch.allclose's form: |diff| <= atol + rtol * |expected|.
        assertAllClose("logits", run.logits().data(), expectedLogits, 1e-4, 1e-4);

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
