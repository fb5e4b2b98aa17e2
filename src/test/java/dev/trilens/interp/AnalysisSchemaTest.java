package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * schema/analysis.schema.json describes what `trilens analyze` writes: real documents of models of several shapes
 * pass it, and a document with a renamed or reshaped key fails it.
 */
@Tag("end-to-end")
class AnalysisSchemaTest {
    private static final Path SCHEMA = Path.of("schema", "analysis.schema.json");
    private static JsonSchema schema;
    private static JsonNode tiny;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = Files.newInputStream(SCHEMA)) {
            schema = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(in);
        }
        Trainer t = TrigramExtractorTestModels.tiny();
        TrigramDataset data = TrigramDataset.generate(t.config().dVocab(), t.config().seqLen(),
                t.config().trigramProb(), t.config().dataSeed(), 300);
        tiny = written(new HookedTransformer(t.weights()), data, "tiny", t.config().modelConfig());
    }

    /** The document as analysis.json holds it: serialised and read back, so NaN is the string "NaN" as in the file. */
    private static JsonNode written(HookedTransformer model, TrigramDataset data, String path, ModelConfig cfg) {
        Analysis analysis = Analysis.run(new AnalysisContext(model, data), s -> { });
        try {
            return Analysis.mapper().readTree(Analysis.mapper().writeValueAsString(analysis.toJson(path, cfg, data)));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static List<String> errors(JsonNode doc) {
        Set<ValidationMessage> messages = schema.validate(doc);
        return messages.stream().map(ValidationMessage::getMessage).sorted().toList();
    }

    @Test
    void theTrainedModelsAnalysisIsValid() {
        assertThat(errors(tiny)).isEmpty();
        // the schema's summary rule has real summaries to check, at several depths
        assertThat(tiny.findValues("summary")).hasSizeGreaterThan(5);
    }

    @Test
    void untrainedModelsOfOtherShapesAreValid() {
        // two layers: the extraction reads one-layer models only, so it and the sections built on it are errors
        ModelConfig twoLayers = new ModelConfig(11, 24, 16, 2, 1, 8, 12, false);
        JsonNode deep = written(new HookedTransformer(Weights.init(twoLayers, 3)),
                TrigramDataset.generate(11, 24, 0.05, 40, 40), "two-layers", twoLayers);
        assertThat(deep.at("/extraction/error").asText()).contains("n_layers=2");
        assertThat(deep.at("/failure_modes/error").isTextual()).isTrue();
        assertThat(errors(deep)).isEmpty();

        // attention-only, two heads, LayerNorm: every section computed, the MLP analysis empty
        ModelConfig twoHeads = new ModelConfig(13, 12, 16, 1, 2, 8, 0, true);
        JsonNode wide = written(new HookedTransformer(Weights.init(twoHeads, 3)),
                TrigramDataset.generate(13, 12, 0.05, 40, 40), "two-heads", twoHeads);
        assertThat(wide.at("/attention/heads")).hasSize(2);
        assertThat(wide.at("/circuits/mlp/has_mlp").asBoolean()).isFalse();
        assertThat(errors(wide)).isEmpty();
    }

    @Test
    void theChallengeModelsAnalysisIsValid() {
        Weights w = TrigramExtractorTestModels.challenge();
        JsonNode doc = written(new HookedTransformer(w), TrigramExtractorTestModels.challengeData(300),
                "trigram_model.pt", w.cfg);
        assertThat(doc.at("/extraction/table/trigrams").size()).isPositive();
        assertThat(errors(doc)).isEmpty();
    }

    @Test
    void aSummaryThatIsAStringIsRejected() {
        ObjectNode doc = tiny.deepCopy();
        ((ObjectNode) doc.get("predictions")).set("summary", TextNode.valueOf("one sentence"));
        assertThat(errors(doc)).anySatisfy(m -> assertThat(m).contains("$.predictions.summary")
                .contains("string found, array expected"));
    }

    @Test
    void aMissingRequiredKeyIsRejected() {
        ObjectNode doc = tiny.deepCopy();
        ObjectNode cut = (ObjectNode) doc.at("/extraction/table/cut");
        assertThat(cut.remove("gap_low")).isNotNull();
        assertThat(errors(doc)).anySatisfy(m -> assertThat(m).contains("$.extraction.table.cut")
                .contains("required property 'gap_low' not found"));
    }

    @Test
    void anExplanationWithoutEvidenceIsRejected() {
        ObjectNode doc = tiny.deepCopy();
        ArrayNode claims = (ArrayNode) doc.get("explanation");
        assertThat(((ObjectNode) claims.get(0)).remove("evidence")).isNotNull();
        assertThat(errors(doc)).anySatisfy(m -> assertThat(m).contains("$.explanation[0]")
                .contains("required property 'evidence' not found"));
    }
}
