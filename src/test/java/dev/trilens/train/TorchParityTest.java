package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TorchPython;
import dev.trilens.data.TorchGenerator;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every random stream of a training run, element for element against the PyTorch installed here: the init of
 * three model shapes (TransformerLens's gpt2 init drawn with normal_ in named_parameters order, including tensors
 * under 16 elements and so the cached scalar path), int64 random_ draws, randperm(100000), and the challenge's
 * split and first two epochs as a real random_split and DataLoader yield them. Skipped where torch is absent; the
 * literal-value tests (TorchGeneratorTest, WeightsInitTest, DataOrderTest) hold the same facts without it.
 */
@Tag("end-to-end")
class TorchParityTest {

    private static final String SCRIPT = """
            import json, sys, torch
            from torch.utils.data import DataLoader, TensorDataset, random_split
            spec = json.loads(sys.argv[1])
            out = {}
            def bits(t):
                return t.contiguous().view(torch.int32).flatten().tolist()
            inits = []
            for cfg in spec["inits"]:
                torch.manual_seed(cfg["seed"])
                inits.append([bits(torch.empty(shape).normal_(0, cfg["std"])) for shape in cfg["shapes"]])
            out["inits"] = inits
            torch.manual_seed(40)
            out["int64"] = [int(torch.empty((), dtype=torch.int64).random_().item()) for _ in range(10)]
            g = torch.Generator(); g.manual_seed(40)
            out["randperm"] = torch.randperm(100000, generator=g).tolist()
            # the challenge's dataset, drawn from the global generator as BigramDataset does, then its split and loader
            d_vocab, seq_len, size = 75, 50, 105000
            torch.manual_seed(40)
            n = int(0.05 * d_vocab * (d_vocab - 1))
            completion, suffixes, kept = {}, set(), 0
            while kept < n:
                a, b, c = torch.randint(0, d_vocab, (3,)).tolist()
                if (a, b) in completion or (b, c) in completion or (a, b) in suffixes:
                    continue
                completion[(a, b)] = c; suffixes.add((b, c)); kept += 1
            toks = torch.randint(0, d_vocab, (size, seq_len))
            out["last_tokens"] = toks[-1].tolist()
            train, val = random_split(TensorDataset(torch.arange(size)), [100000, 5000])
            out["train"], out["val"] = list(train.indices), list(val.indices)
            loader = DataLoader(train, batch_size=512, shuffle=True)
            out["epochs"] = [[i for (batch,) in loader for i in batch.tolist()] for _ in range(2)]
            print(json.dumps(out))
            """;

    @TempDir
    Path tmp;

    @Test
    void everyStreamMatchesTorch() throws Exception {
        TorchPython.assumeAvailable("compare trilens's random streams with PyTorch's");
        ModelConfig[] configs = {ModelConfig.arena(), TrainConfig.quick().modelConfig(),
            new ModelConfig(5, 3, 4, 2, 1, 2, 3, true)};
        long[] seeds = {40, 40, 7};
        ObjectMapper json = new ObjectMapper();
        ObjectNode spec = json.createObjectNode();
        ArrayNode inits = spec.putArray("inits");
        for (int c = 0; c < configs.length; c++) {
            ObjectNode cfg = inits.addObject();
            cfg.put("seed", seeds[c]);
            cfg.put("std", 0.8 / Math.sqrt(configs[c].dModel()));
            ArrayNode shapes = cfg.putArray("shapes");
            for (ParamLayout.Param p : new ParamLayout(configs[c]).params()) {
                if (p.name().contains("W_")) {
                    ArrayNode shape = shapes.addArray();
                    for (int d : p.shape()) {
                        shape.add(d);
                    }
                }
            }
        }
        JsonNode torch = json.readTree(TorchPython.run(tmp, SCRIPT, json.writeValueAsString(spec)));

        for (int c = 0; c < configs.length; c++) {
            Weights w = Weights.init(configs[c], seeds[c]);
            int k = 0;
            for (ParamLayout.Param p : w.layout.params()) {
                if (!p.name().contains("W_")) {
                    continue;
                }
                JsonNode expected = torch.get("inits").get(c).get(k++);
                float[] got = w.copyOf(p.name());
                assertThat(expected.size()).as(p.name()).isEqualTo(got.length);
                for (int i = 0; i < got.length; i++) {
                    assertThat(Float.floatToRawIntBits(got[i])).as("config %d %s[%d]", c, p.name(), i)
                            .isEqualTo(expected.get(i).intValue());
                }
            }
        }

        TorchGenerator g = new TorchGenerator(40);
        assertThat(torch.get("int64")).isNotEmpty();
        for (JsonNode v : torch.get("int64")) {
            assertThat(g.randomInt64()).isEqualTo(v.longValue());
        }
        assertThat(new TorchGenerator(40).randperm(100_000)).containsExactly(ints(torch.get("randperm")));

        TrigramDataset ds = TrigramDataset.generate(75, 50, 0.05, 40, 105_000);
        assertThat(ds.tokensOf(104_999, 105_000)).as("same dataset draws")
                .containsExactly(ints(torch.get("last_tokens")));
        DataOrder order = DataOrder.of(ds, 100_000, 5_000);
        assertThat(order.trainIndices()).containsExactly(ints(torch.get("train")));
        assertThat(order.validationIndices()).containsExactly(ints(torch.get("val")));
        for (int e = 1; e <= 2; e++) {
            assertThat(order.epoch(e)).as("epoch %d", e).containsExactly(ints(torch.get("epochs").get(e - 1)));
        }
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).intValue();
        }
        return out;
    }
}
