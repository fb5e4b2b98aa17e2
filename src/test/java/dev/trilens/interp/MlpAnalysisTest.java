package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import java.util.List;
import org.junit.jupiter.api.Test;

class MlpAnalysisTest {

    @Test
    void attentionOnlyModelsHaveNoMlpSection() {
        MlpAnalysis mlp = MlpAnalysis.compute(new AnalysisContext(
                CircuitsTestModels.model(CircuitsTestModels.ATTN_ONLY, 1), null));
        assertThat(mlp.hasMlp()).isFalse();
        assertThat(mlp.note()).contains("no MLP");
        assertThat(mlp.layers()).isEmpty();
        assertThat(mlp.summary()).singleElement().asString().contains("attention-only");
    }

    @Test
    void trigramNeuronsAreTheModelsActivationsAtPositionOne() throws Exception {
        ModelConfig cfg = new ModelConfig(12, 10, 16, 1, 2, 4, 8, false);
        HookedTransformer model = CircuitsTestModels.model(cfg, 6);
        TrigramDataset data = TrigramDataset.generate(12, 10, 0.1, 6, 4);
        MlpAnalysis mlp = MlpAnalysis.compute(new AnalysisContext(model, data));
        assertThat(mlp.hasMlp()).isTrue();
        MlpAnalysis.Layer layer = mlp.layers().get(0);
        int[][] tri = data.trigrams();
        assertThat(layer.trigrams()).isEqualTo(tri);
        assertThat(layer.nPairs()).isEqualTo(144);
        for (int i = 0; i < tri.length; i++) {
            HookedTransformer.Run run = model.runWithCache(tri[i], 1, 3, n -> true);
            Tensor post = run.cache().get("post", 0);
            for (int m = 0; m < 8; m++) {
                assertThat(layer.trigramActivations()[i][m]).isCloseTo(post.get(0, 1, m), within(1e-5f));
            }
            MlpAnalysis.TrigramNeurons t = layer.topNeurons().get(i);
            assertThat(t.a()).isEqualTo(tri[i][0]);
            assertThat(t.activations()[0]).isEqualTo(max(layer.trigramActivations()[i]));
            assertThat(t.attentionToA()[1]).isCloseTo(run.cache().pattern(0).get(0, 1, 1, 0), within(1e-6f));
        }
        assertThat(layer.fireFracPrefix()).hasSize(8);
        assertThat(layer.overlaps()).hasSize(2);
        JsonNode json = new ObjectMapper().valueToTree(mlp);
        assertThat(json.fieldNames()).toIterable().containsExactly("has_mlp", "note", "layers", "summary");
        assertThat(json.get("layers").get(0).get("overlaps").get(0).fieldNames()).toIterable().containsExactly("head",
                "name", "d_model", "dim_ov_output", "dim_w_in", "forced_shared_dims", "principal_angles_deg", "cosines",
                "mean_cosine", "random_mean_cosine", "ov_energy_in_w_in", "random_energy");
        assertThat(json.get("layers").get(0).get("top_neurons").get(0).has("top_neuron_baseline")).isTrue();
    }

    private static float max(float[] v) {
        float m = Float.NEGATIVE_INFINITY;
        for (float x : v) {
            m = Math.max(m, x);
        }
        return m;
    }

    /** W_O writes into e0, e1; W_in reads e0, e1, e2 (angles 0) or e2, e3, e4 (angles 90). */
    @Test
    void principalAnglesOfPlantedSubspaces() {
        ModelConfig cfg = new ModelConfig(5, 4, 8, 1, 1, 2, 3, false);
        for (int shift : new int[] {0, 2}) {
            Weights w = new Weights(cfg);
            int wv = w.offset("blocks.0.attn.W_V"), wo = w.offset("blocks.0.attn.W_O");
            int wIn = w.offset("blocks.0.mlp.W_in");
            for (int e = 0; e < 2; e++) {
                w.data[wv + (e + 3) * 2 + e] = 1f; // W_V [D=8, Dh=2] reads e3, e4
                w.data[wo + e * 8 + e] = 2f; // W_O [Dh=2, D=8] writes e0, e1
            }
            for (int m = 0; m < 3; m++) {
                w.data[wIn + (m + shift) * 3 + m] = 1f; // W_in [D=8, M=3] reads e_shift .. e_shift+2
            }
            List<MlpAnalysis.SubspaceOverlap> o = MlpAnalysis.overlaps(w, 0);
            MlpAnalysis.SubspaceOverlap s = o.get(0);
            assertThat(s.dimOvOutput()).isEqualTo(2);
            assertThat(s.dimWIn()).isEqualTo(3);
            assertThat(s.forcedSharedDims()).isZero();
            double expected = shift == 0 ? 0 : 90;
            assertThat(s.principalAnglesDeg()).hasSize(2);
            for (double a : s.principalAnglesDeg()) {
                assertThat(a).isCloseTo(expected, within(1e-6));
            }
            assertThat(s.ovEnergyInWIn()).isCloseTo(shift == 0 ? 1 : 0, within(1e-9));
            assertThat(s.randomEnergy()).isEqualTo(3.0 / 8);
            assertThat(s.randomMeanCosine()).isBetween(0.05, 0.95);
        }
    }

    @Test
    void challengeModel() {
        MlpAnalysis mlp = MlpAnalysis.compute(new AnalysisContext(CircuitsTestModels.challenge(),
                CircuitsTestModels.challengeData()));
        System.out.println("challenge MLP: " + String.join("\n  ", mlp.summary()));
        MlpAnalysis.Layer layer = mlp.layers().get(0);
        assertThat(layer.topNeurons()).hasSize(277);
        MlpAnalysis.SubspaceOverlap o = layer.overlaps().get(0);
        assertThat(o.dimOvOutput()).isEqualTo(16);
        assertThat(o.dimWIn()).isEqualTo(20);
        assertThat(o.forcedSharedDims()).isEqualTo(4);
        // 16 + 20 - 32 = 4 dimensions are shared by any such pair: the first 4 angles are 0
        for (int i = 0; i < 4; i++) {
            assertThat(o.principalAnglesDeg()[i]).isLessThan(1e-4);
        }
        assertThat(o.principalAnglesDeg()[4]).isGreaterThan(1);
        // measured: mean cosine 0.816 vs 0.745 random, 71.5% of the OV output energy in W_in's space vs 62.5%
        assertThat(o.ovEnergyInWIn()).isGreaterThan(o.randomEnergy());
        // measured: the top neuron fires for all 277 trigrams, mean 3.23 vs 0.74 for the same b after other tokens
        long fires = layer.topNeurons().stream().filter(t -> t.activations()[0] > 0).count();
        assertThat(fires).isGreaterThan(250);
        double top = layer.topNeurons().stream().mapToDouble(t -> t.activations()[0]).average().orElseThrow();
        double base = layer.topNeurons().stream().mapToDouble(MlpAnalysis.TrigramNeurons::topNeuronBaseline)
                .average().orElseThrow();
        assertThat(top).isGreaterThan(2 * base);
    }
}
