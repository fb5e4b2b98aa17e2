package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.TorchPython;
import dev.trilens.TorchReference;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * evaluate on the published model, as the README shows it, and every number of {@code evaluate --json} against a
 * PyTorch script that loads the checkpoint with torch.load into a model of its own and computes the challenge's
 * metrics from their definitions (the fixture README's), sharing no code with trilens.
 */
class EvaluateCommandTest extends CliTestBase {

    /**
     * argv[1]: {"model": path, "seed", "trigram_prob", "size"}; prints evaluate --json's keys. Logits in float32 as
     * the model computes them, everything after in float64.
     */
    static final String METRICS_SCRIPT = TorchReference.PRELUDE + """
            cfg = json.loads(sys.argv[1])
            model = load(cfg["model"])
            V = model.W_E.shape[0]
            T = model.W_pos.shape[0]
            p = cfg["trigram_prob"]
            trigrams, rows = dataset(V, T, p, cfg["seed"], cfg["size"])
            with torch.no_grad():
                logp = model(rows)[:, :-1].double().log_softmax(-1)
                correct = logp.gather(-1, rows[:, 1:].unsqueeze(-1)).squeeze(-1).exp().flatten()
                loss = next_token_loss(model(rows).double(), rows).item()
                tri = torch.tensor(trigrams, dtype=torch.long)
                at_b = model(tri)[:, 1].double()
                c = tri[:, 2]
            unif = math.log(V)
            floor = unif * (1 - p)
            n_correct = int((at_b.argmax(-1) == c).sum())
            print(json.dumps({
                "loss": loss,
                "loss_as_frac": (loss - floor) / (unif - floor),
                "mean_correct_prob": correct.mean().item(),
                # torch.median: the lower of the two middle values
                "median_correct_prob": correct.median().item(),
                "min_correct_prob": correct.min().item(),
                "trigram_n_correct": n_correct,
                "trigram_frac_correct": n_correct / len(trigrams),
                "trigram_avg_correct_prob": at_b.softmax(-1).gather(-1, c.unsqueeze(-1)).mean().item(),
                "n_trigrams": len(trigrams)}))
            """;

    /** Keys of evaluate --json, all of which the script computes. */
    static final List<String> KEYS = List.of("loss", "loss_as_frac", "mean_correct_prob", "median_correct_prob",
            "min_correct_prob", "trigram_n_correct", "trigram_frac_correct", "trigram_avg_correct_prob", "n_trigrams");

    @TempDir
    Path tmp;

    @Test
    void publishedModelGetsTheReadmesNumbersAndTorchsMetrics() throws Exception {
        Path model = Fixtures.challengeModel();
        assertThat(run("evaluate", "--model", model.toString())).as(err()).isZero();
        // the README's excerpt, to the printed digit
        assertThat(out()).contains("trigram_n_correct         266\n", "trigram_frac_correct      0.960289\n",
                "trigram_avg_correct_prob  0.797796\n", "n_trigrams=277");

        assertThat(run("evaluate", "--model", model.toString(), "--json")).as(err()).isZero();
        JsonNode trilens = new ObjectMapper().readTree(out());
        assertThat(trilens.get("trigram_n_correct").intValue()).isEqualTo(266);
        assertThat(trilens.get("n_trigrams").intValue()).isEqualTo(277);

        TorchPython.assumeAvailable("compute evaluate's metrics with PyTorch");
        // evaluate's defaults, as its --help states them: seed 40, trigram_prob 0.05, 2500 sequences
        assertMatchesTorch(trilens, torchMetrics(tmp, model, 40, 0.05, 2500));
    }

    static JsonNode torchMetrics(Path tmp, Path model, long seed, double trigramProb, int size) throws Exception {
        ObjectMapper json = new ObjectMapper();
        String spec = json.writeValueAsString(json.createObjectNode().put("model", model.toAbsolutePath().toString())
                .put("seed", seed).put("trigram_prob", trigramProb).put("size", size));
        return json.readTree(TorchPython.run(tmp, METRICS_SCRIPT, spec));
    }

    /**
     * Counts exactly; the rest to 2e-6 (the two forwards agree to float32 rounding, ~1e-7 on these logits), far
     * tighter than any change of a definition or baseline would move them.
     */
    static void assertMatchesTorch(JsonNode trilens, JsonNode torch) {
        assertThat(trilens.size()).as("evaluate --json keys: %s", trilens).isEqualTo(KEYS.size());
        for (String k : KEYS) {
            assertThat(trilens.has(k)).as("evaluate --json has %s", k).isTrue();
            if (k.equals("trigram_n_correct") || k.equals("n_trigrams")) {
                assertThat(trilens.get(k).intValue()).as(k).isEqualTo(torch.get(k).intValue());
            } else {
                double want = torch.get(k).doubleValue();
                assertThat(trilens.get(k).doubleValue()).as(k).isCloseTo(want, within(2e-6 * Math.max(1, want)));
            }
        }
    }
}
