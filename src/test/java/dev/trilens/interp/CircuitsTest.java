package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import org.junit.jupiter.api.Test;

class CircuitsTest {

    /** Every section on a LayerNorm 2-layer model without a dataset: computes, says what it could not do. */
    @Test
    void layerNormModelWithoutDataset() throws Exception {
        Circuits c = Circuits.compute(new AnalysisContext(CircuitsTestModels.model(CircuitsTestModels.LN_2L2H, 8),
                null));
        assertThat(c.qkCircuit().linearised()).isTrue();
        assertThat(c.ovCircuit().heads()).hasSize(4);
        assertThat(c.mlp().layers()).hasSize(2);
        assertThat(c.mlp().layers().get(0).topNeurons()).isEmpty();
        assertThat(c.weightProcessing().applied()).hasSize(4);
        assertThat(c.summary()).anyMatch(s -> s.contains("dataset unknown"));
        String json = new ObjectMapper().writeValueAsString(c);
        assertThat(json).doesNotContain("NaN").doesNotContain("Infinity");
    }

    @Test
    void challengeModelEndToEnd() throws Exception {
        TrigramDataset data = CircuitsTestModels.challengeData();
        AnalysisContext ctx = new AnalysisContext(CircuitsTestModels.challenge(), data);
        Circuits c = Circuits.compute(ctx);
        System.out.printf("circuits on the challenge model: %.2f s%n", c.seconds());
        ObjectMapper mapper = new ObjectMapper();
        String text = mapper.writeValueAsString(c);
        assertThat(text).doesNotContain("NaN").doesNotContain("Infinity");
        JsonNode json = mapper.readTree(text);
        assertThat(json.fieldNames()).toIterable().containsExactly("qk_circuit", "ov_circuit", "mlp",
                "weight_processing", "seconds", "summary");
        JsonNode qk = json.get("qk_circuit").get("heads").get(0);
        assertThat(qk.get("prefix_advantage").size()).isEqualTo(75);
        assertThat(qk.get("decomposition").get("pos_pos").size()).isEqualTo(50);
        assertThat(qk.get("separation").get("auc").asDouble()).isGreaterThan(0.84);
        assertThat(qk.get("separation").get("auc_learned").asDouble()).isGreaterThan(0.99);
        JsonNode ov = json.get("ov_circuit").get("heads").get(0);
        assertThat(ov.get("full_ov").size()).isEqualTo(75);
        assertThat(ov.get("trigram_direct_effect").has("mean_rank")).isTrue();
        JsonNode mlp = json.get("mlp").get("layers").get(0);
        assertThat(mlp.get("trigram_activations").size()).isEqualTo(277);
        assertThat(mlp.get("overlaps").get(0).get("principal_angles_deg").size()).isEqualTo(16);
        assertThat(mlp.get("top1_counts").size()).isEqualTo(20);
        assertThat(json.get("weight_processing").get("applied").size()).isEqualTo(2);
        assertThat(c.summary()).isNotEmpty();
    }
}
