package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.trilens.io.JsonFields;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ComparisonTest {

    private static Trainer.EpochMetrics epoch(double trainLoss, int nCorrect, double avgProb) {
        return new Trainer.EpochMetrics(5, trainLoss, trainLoss / 10, trainLoss + 0.5, nCorrect, nCorrect / 8.0,
                avgProb, 1e-3, 1.0);
    }

    @Test
    void statsAreMeanAndSampleStd() {
        Comparison.Stats s = Comparison.Stats.of(new double[] {1, 2, 3, 4});
        assertThat(s.mean()).isEqualTo(2.5);
        assertThat(s.std()).isCloseTo(Math.sqrt(5.0 / 3), within(1e-15));
        assertThat(s.min()).isEqualTo(1);
        assertThat(s.max()).isEqualTo(4);
        assertThat(Comparison.Stats.of(new double[] {7}).std()).isNaN();
        // the deviations are taken from the mean before squaring: around a value as large as 1e15 the spread is
        // still exact, where sum(x^2) - n mean^2 loses it to rounding (it gives 1.41 here)
        Comparison.Stats far = Comparison.Stats.of(new double[] {1e15 + 1, 1e15 + 2, 1e15 + 3, 1e15 + 4});
        assertThat(far.std()).isCloseTo(Math.sqrt(5.0 / 3), within(1e-15));
    }

    @SuppressWarnings("unchecked")
    @Test
    void jsonAndTablesCarryEveryRunAndTheirSummary() {
        TrainConfig cfg = TrainConfig.quick().withEpochs(5);
        Comparison c = new Comparison("quick", List.of(
                new Comparison.Variant("mlp", cfg, List.of(
                        new Comparison.Run(40, "mlp-seed40", epoch(3.0, 8, 0.9), 2.0),
                        new Comparison.Run(41, "mlp-seed41", epoch(3.2, 6, 0.7), 2.5))),
                new Comparison.Variant("attn-only", cfg.withDMlp(0), List.of(
                        new Comparison.Run(40, "attn-only-seed40", epoch(3.4, 7, 0.5), 1.0),
                        new Comparison.Run(41, "attn-only-seed41", epoch(3.6, 5, 0.3), 1.5)))));
        Comparison.Json json = c.toJson(2, 1, 9.5);
        assertThat(json.preset()).isEqualTo("quick");
        assertThat(json.epochs()).isEqualTo(5);
        assertThat(json.seeds()).containsExactly(40L, 41L);
        assertThat(List.of(json.parallelRuns(), json.threadsPerRun())).containsExactly(2, 1);
        assertThat(json.seconds()).isEqualTo(9.5);
        Map<String, Object> written = JsonFields.of(json);
        assertThat(written.keySet()).containsExactly("preset", "epochs", "seeds", "spread", "variants",
                "parallel_runs", "threads_per_run", "seconds");
        Map<String, Object> mlp = (Map<String, Object>) ((Map<String, Object>) written.get("variants")).get("mlp");
        assertThat(mlp.keySet()).containsExactly("config", "runs", "metrics");
        assertThat((Map<String, Object>) mlp.get("config")).containsEntry("d_mlp", 20)
                .containsEntry("seeds", List.of(40L, 41L)).doesNotContainKeys("data_seed", "init_seed");
        Map<String, Object> metrics = (Map<String, Object>) mlp.get("metrics");
        assertThat(metrics).containsOnlyKeys(Comparison.METRICS);
        Map<String, Object> nCorrect = (Map<String, Object>) metrics.get("trigram_n_correct");
        assertThat((List<Object>) nCorrect.get("values")).containsExactly(8.0, 6.0);
        assertThat(nCorrect).containsEntry("mean", 7.0).containsEntry("min", 6.0).containsEntry("max", 8.0);
        assertThat((double) nCorrect.get("std")).isCloseTo(Math.sqrt(2), within(1e-15));
        List<Map<String, Object>> runs = (List<Map<String, Object>>) mlp.get("runs");
        assertThat(runs).extracting(r -> r.get("train_loss")).containsExactly(3.0, 3.2);
        assertThat(runs.get(0).keySet()).containsExactly("seed", "dir", "epoch", "train_loss", "train_loss_as_frac",
                "trigram_n_correct", "trigram_frac_correct", "trigram_avg_correct_prob", "val_loss", "seconds");

        assertThat(c.variants()).extracting(Comparison.Variant::name).containsExactly("mlp", "attn-only");
        String columns = "| train_loss | train_loss_as_frac | trigram_n_correct | trigram_frac_correct "
                + "| trigram_avg_correct_prob | val_loss |";
        String rule = "|---:|---:|---:|---:|---:|---:|";
        assertThat(c.table()).startsWith("| variant | d_mlp " + columns + "\n|---|---:" + rule + "\n");
        assertThat(c.markdown()).contains("| run | seed " + columns + " seconds |\n|---|---:" + rule + "---:|\n");
        assertThat(c.table()).contains("| mlp | 20 | 3.1000 ± 0.1414 |").contains("| 7.0 ± 1.4 |")
                .contains("| attn-only | 0 | 3.5000 ± 0.1414 |");
        assertThat(c.caption()).isEqualTo("final epoch (5) of each run, mean ± sample std over 2 seeds (40, 41)");
        assertThat(c.markdown()).contains("| attn-only-seed41 | 41 | 3.6000 | 0.3600 | 5 | 0.6250 | 0.3000 | 4.1000 |"
                + " 1.5 |");

        Comparison one = new Comparison("quick", List.of(new Comparison.Variant("mlp", cfg, List.of(
                new Comparison.Run(40, "mlp-seed40", epoch(3.0, 8, 0.9), 2.0)))));
        Map<String, Object> m = (Map<String, Object>) ((Map<String, Object>) ((Map<String, Object>) ((Map<String,
                Object>) JsonFields.of(one.toJson(1, 1, 1)).get("variants")).get("mlp")).get("metrics"))
                .get("train_loss");
        assertThat(m).containsEntry("std", null).containsEntry("mean", 3.0);
        assertThat(one.table()).contains("| mlp | 20 | 3.0000 | 0.3000 |").doesNotContain("±");
        assertThat(one.caption()).isEqualTo("final epoch (5) of each run, one run, no spread over 1 seed (40)");
    }

    @Test
    void aComparisonNeedsARunInEveryVariant() {
        TrainConfig cfg = TrainConfig.quick();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new Comparison("quick", List.of()))
                .isInstanceOf(IllegalArgumentException.class);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new Comparison("quick", List.of(
                        new Comparison.Variant("mlp", cfg, List.of(new Comparison.Run(40, "a", epoch(3, 1, 0.5), 1))),
                        new Comparison.Variant("attn-only", cfg.withDMlp(0), List.of()))))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("a comparison needs at least one variant with at least one run");
    }
}
