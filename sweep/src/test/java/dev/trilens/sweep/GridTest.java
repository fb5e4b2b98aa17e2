package dev.trilens.sweep;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import dev.trilens.train.TrainConfig;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The grid file: what it may say, the runs it makes, and a one-line error for everything else. */
class GridTest {

    @Test
    void axesMakeTheCrossProductWithStableIdsAndTrainsConfigs() {
        Grid g = Grid.parse("""
                preset: quick
                train: {epochs: 5, trigram_prob: 0.10}
                axes:
                  init_seed: [0, 1, 2]
                  d_mlp: [0, 20]
                """, "g.yaml");
        assertThat(g.preset()).isEqualTo("quick");
        assertThat(g.fixed()).containsExactly(Map.entry("epochs", "5"), Map.entry("trigram_prob", "0.1"));
        // train's flag order, whatever the file's: the ids do not change when the axes are reordered
        assertThat(g.axes()).extracting(Grid.Axis::name).containsExactly("d_mlp", "init_seed");
        assertThat(g.size()).isEqualTo(6);
        assertThat(g.shape()).isEqualTo("d_mlp 2 x init_seed 3");
        List<Grid.Run> runs = g.runs();
        assertThat(runs).extracting(Grid.Run::id).containsExactly("d_mlp=0_init_seed=0", "d_mlp=0_init_seed=1",
                "d_mlp=0_init_seed=2", "d_mlp=20_init_seed=0", "d_mlp=20_init_seed=1", "d_mlp=20_init_seed=2");
        assertThat(runs.get(4).config()).isEqualTo(TrainConfig.quick().withEpochs(5).withTrigramProb(0.1)
                .withDMlp(20).withInitSeed(1));
        assertThat(runs.get(4).flags()).containsExactly("--preset", "quick", "--d-mlp", "20", "--epochs", "5",
                "--init-seed", "1", "--trigram-prob", "0.1");
        assertThat(runs.get(4).axes()).containsExactly(Map.entry("d_mlp", "20"), Map.entry("init_seed", "1"));

        Grid reordered = Grid.parse("""
                preset: quick
                train: {trigram_prob: 0.1, epochs: 5}
                axes: {d_mlp: [0, 20], init_seed: [0, 1, 2]}
                """, "h.yaml");
        assertThat(reordered.runs()).isEqualTo(runs);
    }

    @Test
    void everyTrainFlagIsAnAxisAndBooleansAndSeedsWorkAsInTrain() {
        Grid g = Grid.parse("""
                preset: quick
                train: {seed: 7}
                axes: {attn_only: [false, true], d_head: [8], data_seed: [40], trigram_prob: [0.05, 1e-1]}
                """, "g.yaml");
        assertThat(Grid.NAMES).containsExactly("attn_only", "d_head", "d_mlp", "d_model", "n_layers", "n_heads",
                "d_vocab", "n_ctx", "layernorm", "batch", "epochs", "seed", "data_seed", "init_seed", "trigram_prob");
        List<Grid.Run> runs = g.runs();
        assertThat(runs).extracting(Grid.Run::id).containsExactly(
                "attn_only=false_d_head=8_data_seed=40_trigram_prob=0.05",
                "attn_only=false_d_head=8_data_seed=40_trigram_prob=0.1",
                "attn_only=true_d_head=8_data_seed=40_trigram_prob=0.05",
                "attn_only=true_d_head=8_data_seed=40_trigram_prob=0.1");
        // seed sets both seeds, data_seed then overrides one, as train --seed 7 --data-seed 40 does
        assertThat(runs.get(3).config()).isEqualTo(TrainConfig.quick().withSeed(7).withDataSeed(40).withDHead(8)
                .withDMlp(0).withTrigramProb(0.1));
        assertThat(runs.get(0).flags()).doesNotContain("--attn-only");
        assertThat(g.axes().get(0).isBoolean()).isTrue();
        assertThat(g.axes().stream().filter(Grid.Axis::isSeed)).extracting(Grid.Axis::name)
                .containsExactly("data_seed");
        assertThat(Grid.typed("attn_only", "true")).isEqualTo(true);
        assertThat(Grid.typed("data_seed", "40")).isEqualTo(40L);
        assertThat(Grid.typed("d_head", "8")).isEqualTo(8);
        assertThat(Grid.typed("trigram_prob", "0.1")).isEqualTo(0.1);
        // the shape flags are axes too, typed as train types them
        assertThat(Grid.typed("layernorm", "true")).isEqualTo(true);
        assertThat(Grid.typed("d_model", "64")).isEqualTo(64);
        assertThat(Grid.parse("preset: quick\naxes: {d_model: [16, 48], layernorm: [true]}", "g").runs())
                .extracting(r -> r.config().dModel() + (r.config().layerNorm() ? " LN" : ""))
                .containsExactly("16 LN", "48 LN");
        assertThat(Grid.parse("axes: {epochs: [1]}", "g").preset()).as("train's default").isEqualTo("arena");
    }

    @Test
    void badGridsAreOneLineErrorsNamingWhatIsWrong() {
        bad("axes: {d_mlp: [0], width: [1]}", "g.yaml: unknown axis 'width' under axes, expected one of attn_only, "
                + "d_head, d_mlp, d_model, n_layers, n_heads, d_vocab, n_ctx, layernorm, batch, epochs, seed, "
                + "data_seed, init_seed, trigram_prob");
        bad("train: {lr: 1}\naxes: {d_mlp: [0]}", "g.yaml: unknown train flag 'lr' under train, expected one of");
        bad("axes: {d_mlp: []}", "g.yaml: axes.d_mlp is empty; expected a list of at least one value");
        bad("axes: {d_mlp: 20}", "g.yaml: axes.d_mlp is a number; expected a list of values, e.g. [20] (a single "
                + "value goes under train:)");
        bad("axes: {d_mlp: [0, -1]}", "g.yaml: axes.d_mlp[1] = -1: --d-mlp must be >= 0 (0 = attention-only), got -1");
        bad("axes: {d_mlp: [ten]}", "g.yaml: axes.d_mlp[0] = ten: Invalid value for option '--d-mlp': 'ten' is not "
                + "an int");
        bad("axes: {d_mlp: [20.5]}", "g.yaml: axes.d_mlp[0] = 20.5: Invalid value for option '--d-mlp': '20.5' is "
                + "not an int");
        bad("axes: {trigram_prob: [0.05, 1.5]}", "g.yaml: axes.trigram_prob[1] = 1.5: --trigram-prob must be > 0 "
                + "and < 1, got 1.5");
        bad("axes: {trigram_prob: [.nan]}", "g.yaml is not a valid grid file: Malformed numeric value");
        bad("axes: {trigram_prob: [1e400]}", "g.yaml: axes.trigram_prob[0] is Infinity; expected a finite number");
        bad("axes: {attn_only: [1]}", "g.yaml: axes.attn_only[0] is number 1; expected true or false");
        bad("axes: {d_mlp: [[1, 2]]}", "g.yaml: axes.d_mlp[0] is a list; expected a whole number");
        bad("axes: {d_mlp: [~]}", "g.yaml: axes.d_mlp[0] is a null; expected a whole number");
        bad("axes: {d_mlp: [0, 0]}", "g.yaml: axes.d_mlp lists 0 twice; expected each value once");
        bad("axes: {attn_only: [true], d_mlp: [0, 20]}", "g.yaml: run attn_only=true_d_mlp=20: --attn-only "
                + "contradicts --d-mlp 20; give one of them");
        bad("axes: {seed: [1, 2], data_seed: [3], init_seed: [4]}", "g.yaml: runs seed=1_data_seed=3_init_seed=4 and "
                + "seed=2_data_seed=3_init_seed=4 train the same config; expected every run to differ");
        bad("preset: tiny\naxes: {d_mlp: [0]}", "g.yaml: preset: Invalid value for option '--preset': expected one "
                + "of [arena, fast, quick] (case-sensitive) but was 'tiny'");
        bad("preset: [quick]\naxes: {d_mlp: [0]}", "g.yaml: preset is a list; expected a preset name");
        bad("axes: {preset: [quick, arena]}", "g.yaml: preset under axes: expected it at the top level");
        bad("train: {d_mlp: 0}\naxes: {d_mlp: [0]}", "g.yaml: d_mlp is both a fixed train flag and an axis");
        bad("train: {epochs: 0}\naxes: {d_mlp: [0]}", "g.yaml: train.epochs = 0: --epochs must be >= 1, got 0");
        bad("preset: quick", "g.yaml has no axes; expected axes: mapping at least one train flag to a list of values");
        bad("axes: {}", "g.yaml has no axes");
        bad("axis: {d_mlp: [0]}", "g.yaml: unknown key 'axis', expected preset, train, axes");
        bad("", "g.yaml is empty; expected YAML with preset, train and axes");
        bad("- d_mlp", "g.yaml holds a list; expected a mapping with preset, train and axes");
        bad("axes: {d_mlp: [0]}\naxes: {d_head: [8]}", "g.yaml is not a valid grid file: Duplicate field 'axes'");
        bad("axes: {d_mlp: [0}", "g.yaml is not a valid grid file: ");
    }

    private static void bad(String yaml, String message) {
        assertThatThrownBy(() -> Grid.parse(yaml, "g.yaml").runs()).as(yaml).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(message).satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
    }

    @Test
    void sizeIsCountedWithoutMakingTheRuns() {
        Grid g = Grid.parse("axes: {init_seed: [" + String.join(", ", java.util.stream.IntStream
                .range(0, 1000).mapToObj(String::valueOf).toList()) + "], data_seed: [" + String.join(", ",
                java.util.stream.IntStream.range(0, 1000).mapToObj(String::valueOf).toList()) + "]}", "big.yaml");
        assertThat(g.size()).isEqualTo(1_000_000);
    }
}
