package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.data.TorchGenerator;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Weights.init against PyTorch: TransformerLens's gpt2 init of the challenge model after torch.manual_seed(40).
 * The expected values were printed by PyTorch 1.13.1 (x86-64, AVX2) drawing normal_(0, 0.8 / sqrt(32)) into
 * tensors of each "W_" parameter's shape, in named_parameters order; TorchParityTest checks every element.
 */
class WeightsInitTest {

    /** First three values and the last value of each weight matrix, as torch printed them. */
    private static final Map<String, float[]> TORCH = new LinkedHashMap<>();

    static {
        TORCH.put("embed.W_E", new float[] {-0.033479027450084686f, 0.25609710812568665f, 0.02780490554869175f,
            -0.02092324197292328f});
        TORCH.put("pos_embed.W_pos", new float[] {-0.04480765387415886f, -0.0613255500793457f, 0.21633440256118774f,
            -0.20174667239189148f});
        TORCH.put("blocks.0.attn.W_Q", new float[] {0.18915028870105743f, -0.13211311399936676f,
            0.028133761137723923f, -0.03777367249131203f});
        TORCH.put("blocks.0.attn.W_O", new float[] {-0.0915558785200119f, -0.30269917845726013f,
            0.10027113556861877f, 0.29097434878349304f});
        TORCH.put("blocks.0.attn.W_K", new float[] {-0.17449671030044556f, -0.03559419885277748f,
            0.01744544692337513f, 0.06636073440313339f});
        TORCH.put("blocks.0.attn.W_V", new float[] {-0.17208951711654663f, 0.33122190833091736f,
            0.0021774806082248688f, 0.055497996509075165f});
        TORCH.put("blocks.0.mlp.W_in", new float[] {0.14895716309547424f, -0.23595526814460754f,
            0.06493671983480453f, 0.1602720022201538f});
        TORCH.put("blocks.0.mlp.W_out", new float[] {-0.10569926351308823f, -0.11712846904993057f,
            0.09155265241861343f, 0.035230714827775955f});
        TORCH.put("unembed.W_U", new float[] {-0.13860034942626953f, -0.45544901490211487f, 0.04037758708000183f,
            0.05079078674316406f});
    }

    @Test
    void challengeInitMatchesTorchWithSeed40() {
        Weights w = Weights.init(ModelConfig.arena(), 40);
        long bitSum = 0;
        int count = 0;
        int compared = 0;
        int biases = 0;
        for (ParamLayout.Param p : w.layout.params()) {
            float[] v = w.copyOf(p.name());
            float[] expected = TORCH.get(p.name());
            if (expected == null) {
                assertThat(v).as("%s is a bias: zero", p.name()).containsOnly(0f);
                biases++;
                continue;
            }
            compared++;
            assertThat(new float[] {v[0], v[1], v[2], v[v.length - 1]}).as(p.name()).containsExactly(expected);
            for (float x : v) {
                bitSum += Float.floatToRawIntBits(x);
                count++;
            }
        }
        assertThat(TORCH).hasSize(9);
        assertThat(compared).as("every torch tensor was compared").isEqualTo(TORCH.size());
        assertThat(biases).isPositive();
        // sum of the raw float bits of all 9,728 weights, as torch's tensors give it
        assertThat(count).isEqualTo(9728);
        assertThat(bitSum).isEqualTo(-355738449226L);
    }

    @Test
    void drawsFollowTheParameterOrderFromOneStream() {
        ModelConfig cfg = ModelConfig.arena();
        Weights w = Weights.init(cfg, 40);
        TorchGenerator g = new TorchGenerator(40);
        double std = 0.8 / Math.sqrt(32);
        for (ParamLayout.Param p : w.layout.params()) {
            if (!p.name().contains("W_")) {
                continue;
            }
            float[] expected = new float[p.size()];
            g.normal(expected, 0, p.size(), 0, std);
            assertThat(w.copyOf(p.name())).as(p.name()).containsExactly(expected);
        }
        assertThat(Weights.init(cfg, new TorchGenerator(40)).data).isEqualTo(w.data);
        assertThat(Weights.init(cfg, 41).data).isNotEqualTo(w.data);
    }

    @Test
    void layerNormScalesAreOneAndAttentionOnlyHasNoMlp() {
        ModelConfig cfg = new ModelConfig(10, 8, 16, 2, 2, 4, 0, true);
        Weights w = Weights.init(cfg, 1);
        int[] seen = new int[3]; // layer-norm scales, biases, weight matrices: each branch must be exercised
        for (ParamLayout.Param p : w.layout.params()) {
            float[] v = w.copyOf(p.name());
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            if (leaf.equals("w")) {
                assertThat(v).as(p.name()).containsOnly(1f);
                seen[0]++;
            } else if (!p.name().contains("W_")) {
                assertThat(v).as(p.name()).containsOnly(0f);
                seen[1]++;
            } else {
                assertThat(v).as(p.name()).doesNotContain(0f);
                seen[2]++;
            }
        }
        assertThat(seen).as("params per branch").doesNotContain(0);
        assertThat(w.layout.params()).noneMatch(p -> p.name().contains("mlp"));
    }
}
