package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TorchPython;
import dev.trilens.TorchReference;
import dev.trilens.io.JsonFields;
import dev.trilens.model.ParamLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole training recipe replayed by PyTorch itself: a script of its own builds the model in plain torch (no
 * TransformerLens), draws the init, the dataset, random_split and the shuffling DataLoader from torch's generators,
 * and trains with {@code torch.optim.AdamW} and the challenge's per-epoch schedule. trilens's weights must match
 * its weights after every epoch, per tensor (all but b_K, see {@link #comparable}), to 1e-5 of the tensor's
 * largest entry, through a fresh run and a resumed one. Measured: at most 1.3e-6.
 *
 * <p>So that the comparison is known to be able to fail, the same script also trains variants with one ingredient
 * wrong (weight decay 0, from the start and only after the resume point; other betas; other eps; a constant
 * learning rate; the schedule one epoch late; the batches unshuffled) and each must differ from trilens's weights by far more than the tolerance.
 */
@Tag("end-to-end")
class TorchReplayTest {

    /** Relative tolerance per tensor: max |trilens - torch| over max |torch|. */
    static final double TOL = 1e-5;

    private static final String SCRIPT = TorchReference.PRELUDE + """
            from torch.utils.data import DataLoader, TensorDataset, random_split
            cfg = json.loads(sys.argv[1])
            V, T, D = cfg["d_vocab"], cfg["seq_len"], cfg["d_model"]

            def train(variant):
                torch.manual_seed(cfg["init_seed"])
                model = OneLayer(V, T, D, cfg["n_heads"], cfg["d_head"], cfg["d_mlp"])
                for name, p in model.named_parameters():
                    if "W_" in name:
                        p.data.normal_(0, 0.8 / math.sqrt(D))
                # BigramDataset reseeds the global generator, which then draws the split and every shuffle
                _, rows = dataset(V, T, cfg["trigram_prob"], cfg["data_seed"], cfg["n_train"] + cfg["n_val"])
                train_set, _ = random_split(TensorDataset(torch.arange(rows.shape[0])), [cfg["n_train"], cfg["n_val"]])
                loader = DataLoader(train_set, batch_size=cfg["batch_size"], shuffle=variant.get("shuffle", True))
                opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr_start"], weight_decay=cfg["weight_decay"],
                                        betas=tuple(variant.get("betas", (0.9, 0.999))), eps=variant.get("eps", 1e-8))
                E, after = cfg["epochs"], []
                for e in range(E):
                    # the challenge's schedule, set at the start of each epoch; the variants break it
                    lr = cfg["lr_start"] + (cfg["lr_end"] - cfg["lr_start"]) * (e + 1 - variant.get("lr_lag", 0)) / E
                    if variant.get("constant_lr"):
                        lr = cfg["lr_start"]
                    for g in opt.param_groups:
                        g["lr"] = lr
                        if e + 1 >= variant.get("no_decay_from", E + 1):
                            g["weight_decay"] = 0.0
                    for (idx,) in loader:
                        tok = rows[idx]
                        loss = next_token_loss(model(tok), tok)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                    after.append({name: p.detach().flatten().tolist() for name, p in model.named_parameters()})
                return after

            print(json.dumps({v["name"]: train(v) for v in cfg["variants"]}))
            """;

    @TempDir
    Path tmp;

    /**
     * Seconds in each: the quick preset's model and learning rates on 600 + 100 sequences, 4 epochs of 10 batches
     * (the last one partial). Its weight decay is 0.1 rather than the presets' 1e-3: over 40 steps 1e-3 shrinks the
     * weights by only ~2e-4 of themselves in all, so dropping it would move them by little more than the tolerance
     * allows; at 0.1 it moves them ~100 times further.
     */
    static TrainConfig small() {
        TrainConfig q = TrainConfig.quick();
        return new TrainConfig(q.dVocab(), q.seqLen(), q.trigramProb(), 40, 600, 100, 4, 64, q.lrStart(), q.lrEnd(),
                0.1, q.dModel(), q.nHeads(), q.dHead(), q.dMlp(), q.nLayers(), false, 40);
    }

    @Test
    void trilensTrainsAsPyTorchDoesEpochByEpochThroughAResume() throws Exception {
        TorchPython.assumeAvailable("replay trilens's training recipe in PyTorch");
        TrainConfig cfg = small();
        ObjectMapper json = new ObjectMapper();
        Map<String, Object> spec = new LinkedHashMap<>(JsonFields.of(cfg));
        List<Map<String, Object>> variants = List.of(
                Map.of("name", "recipe"),
                Map.of("name", "weight decay 0", "no_decay_from", 1),
                Map.of("name", "weight decay 0 after the resume", "no_decay_from", 3),
                Map.of("name", "betas 0.8/0.99", "betas", List.of(0.8, 0.99)),
                Map.of("name", "eps 1e-6", "eps", 1e-6),
                Map.of("name", "constant lr", "constant_lr", true),
                Map.of("name", "schedule one epoch late", "lr_lag", 1),
                Map.of("name", "batches unshuffled", "shuffle", false));
        spec.put("variants", variants);
        JsonNode torch = json.readTree(TorchPython.run(tmp, SCRIPT, json.writeValueAsString(spec)));

        // two epochs in a fresh run, then the rest in a resumed one, as a killed and restarted run would go
        List<float[]> trilens = new ArrayList<>();
        Path run = tmp.resolve("run");
        Trainer first = Trainer.start(cfg, run);
        first.run(epochCopier(first, trilens), 2);
        Trainer resumed = Trainer.resume(run);
        resumed.run(epochCopier(resumed, trilens));
        assertThat(trilens).hasSize(cfg.epochs());

        ParamLayout layout = first.weights().layout;
        JsonNode recipe = torch.get("recipe");
        assertThat(recipe).hasSize(cfg.epochs());
        Map<String, Double> errors = new LinkedHashMap<>();
        List<ParamLayout.Param> compared = comparable(layout);
        for (int e = 0; e < cfg.epochs(); e++) {
            for (ParamLayout.Param p : compared) {
                errors.put("epoch " + (e + 1) + " " + p.name(),
                        relativeError(trilens.get(e), p, recipe.get(e).get(torchName(p))));
            }
        }
        System.out.println("max |trilens - torch| / max |torch| per tensor: " + errors);
        assertThat(errors).hasSize(cfg.epochs() * compared.size());
        assertThat(errors).allSatisfy((k, err) -> assertThat(err).as(k).isLessThanOrEqualTo(TOL));

        for (Map<String, Object> v : variants.subList(1, variants.size())) {
            String name = (String) v.get("name");
            JsonNode wrong = torch.get(name);
            double worst = 0;
            for (ParamLayout.Param p : compared) {
                worst = Math.max(worst, relativeError(trilens.get(cfg.epochs() - 1), p,
                        wrong.get(cfg.epochs() - 1).get(torchName(p))));
            }
            // a trainer with this ingredient wrong would sit here, so the comparison above would have failed it
            System.out.println(name + ": " + worst);
            assertThat(worst).as("the worst tensor of a run with %s, after the last epoch", name)
                    .isGreaterThan(10 * TOL);
        }
    }

    /**
     * Every tensor but b_K. Its gradient is exactly zero: q . b_K is added to every key's score of a query alike,
     * and softmax ignores such a shift. Adam divides whatever rounding noise stands in for that zero by its own
     * root mean square, so that noise walks b_K by up to ~lr a step, differently in each implementation (after one
     * epoch the two differed by 1.2 times torch's largest entry); by the same shift invariance no output depends
     * on it.
     */
    static List<ParamLayout.Param> comparable(ParamLayout layout) {
        List<ParamLayout.Param> kept = layout.params().stream().filter(p -> !p.name().endsWith("attn.b_K")).toList();
        assertThat(kept).as("exactly one b_K left out").hasSize(layout.params().size() - 1);
        return kept;
    }

    private static Trainer.Listener epochCopier(Trainer t, List<float[]> into) {
        return new Trainer.Listener() {
            @Override
            public void epochDone(Trainer.EpochMetrics m) {
                into.add(t.weights().data.clone());
            }
        };
    }

    /** "blocks.0.attn.W_Q" -> "W_Q": the script's module has the one layer's parameters at its top level. */
    private static String torchName(ParamLayout.Param p) {
        return p.name().substring(p.name().lastIndexOf('.') + 1);
    }

    private static double relativeError(float[] data, ParamLayout.Param p, JsonNode expected) {
        assertThat(expected).as(p.name()).isNotNull();
        assertThat(expected.size()).as(p.name()).isEqualTo(p.size());
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < p.size(); i++) {
            double ref = expected.get(i).doubleValue();
            maxDiff = Math.max(maxDiff, Math.abs(data[p.offset() + i] - ref));
            maxRef = Math.max(maxRef, Math.abs(ref));
        }
        // an all-zero tensor (a bias never moved) must then be exactly zero in trilens too
        return maxRef == 0 ? (maxDiff == 0 ? 0 : Double.POSITIVE_INFINITY) : maxDiff / maxRef;
    }
}
