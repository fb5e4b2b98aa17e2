package dev.trilens.interp;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.ActivationCache;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Parallel;
import dev.trilens.model.Weights;
import dev.trilens.train.DataOrder;
import dev.trilens.train.Metrics;
import dev.trilens.train.RunSnapshots;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.function.ToDoubleFunction;

/**
 * The circuit as it forms: the analyses of the final model, repeated on every snapshot of a training run
 * ({@code train --snapshot-every}), and what their course says.
 *
 * <p>Per snapshot: the challenge's metrics (from metrics.jsonl, which {@link RunSnapshots} checks the snapshot against;
 * the trigram ones recomputed; epoch 0's validation loss computed, to float rounding the trainer's, its training loss
 * undefined); the
 * trigram table read from the weights alone ({@link TrigramExtractor}); the QK prefix-score AUC of the dataset's
 * prefixes ({@link QkCircuit}); the head's attention on the previous token at learned-prefix positions and elsewhere,
 * and at the dataset's prefix positions and elsewhere (Explanation's measure); direct logit attribution
 * ({@link Attribution}) of the correct next token at trigram positions, summed into embeddings, attention head(s),
 * MLP and biases; each parameter's distance from its initial value; and W_pos[n_ctx-1] against the other rows. The
 * evaluation batch is the one {@code evaluate} and {@code run} use (the run's seed, evalSize sequences).
 *
 * <p>Per dataset trigram: the first snapshot from which it is extracted (with its c) and stays so to the last
 * ({@code learned_epoch}, null if it is not extracted at the end), how often it occurs in the run's training
 * sequences, and whether its b is the b of another trigram. Then the order of learning against frequency (Spearman's
 * rank correlation, with a permutation test), phase changes by the rule {@link #PHASE_RULE}, and sentences computed
 * from all of it.
 */
public final class TrainingDynamics {

    /** Phase changes: a rate this many times the median rate over the run... */
    static final double PHASE_MEDIAN_FACTOR = 3;
    /** ...and at least this share of the metric's whole range per epoch... */
    static final double PHASE_RANGE_SHARE = 0.1;
    /** ...the largest within this many snapshots either side. */
    static final int PHASE_WINDOW = 2;
    public static final String PHASE_RULE = String.format(Locale.ROOT, "a metric changes phase at the snapshot "
            + "ending a step whose change per epoch is at least %.0f times the median change per epoch over the run, "
            + "at least %.0f%% of the metric's whole range per epoch, and the largest within %d snapshots either "
            + "side", PHASE_MEDIAN_FACTOR, 100 * PHASE_RANGE_SHARE, PHASE_WINDOW);
    /** The series scanned for phase changes, by their key in a snapshot. */
    static final Map<String, ToDoubleFunction<Snapshot>> PHASE_METRICS = phaseMetrics();

    /** The epochs by which the number of learned trigrams is stated. */
    static final int[] MILESTONES = {10, 25, 50};
    /**
     * Sequences per forward pass of a snapshot's evaluation. Smaller chunks keep the cached activations in a core's
     * L2 cache (a little faster warm), but each pass has its set-up, and with 25 passes per snapshot (2,500 in a run
     * of 100 epochs) the JIT compiled that set-up with its optimizing compiler several times over while the first
     * snapshots ran (JFR jdk.Compilation); 10 passes per snapshot stay below that.
     */
    static final int EVAL_CHUNK = 250;
    /** Learning order "follows" frequency when Spearman's rho is at most -ORDER_RHO with p below ORDER_P. */
    static final double ORDER_RHO = 0.2, ORDER_P = 0.01;
    static final int PERMUTATIONS = 2000;
    /** Rises smaller than these are no onset: attention (a share of the attention) and the MLP's DLA (logits). */
    static final double MIN_ATTENTION_RISE = 0.1, MIN_MLP_RISE = 0.5;
    /** W_pos[n_ctx-1] counts as untrained when it moved less than this share of the other rows' median. */
    static final double UNTRAINED_SHARE = 0.1;
    /** A measure has appeared at the first snapshot where it covered this share of its rise (and half-way at 1/2). */
    static final double APPEARED = 0.1;
    public static final String ONSET_RULE = String.format(Locale.ROOT, "a measure appears at the first snapshot "
            + "where it has covered a tenth of its change from epoch 0 to the last snapshot, and is half-way where "
            + "it has covered half; a rise under %.1f (attention) or %.1f logits (MLP) counts as none; which came "
            + "first is read from their appearance", MIN_ATTENTION_RISE, MIN_MLP_RISE);

    /** DLA components, summed into these groups. */
    public static final List<String> DLA_GROUPS = List.of("embeddings", "attention", "mlp", "bias");

    private TrainingDynamics() {
    }

    /**
     * One snapshot. {@code extracted} lists the extracted (a, b, c); {@code attn_head} is the layer-0 head attending
     * most to a at learned prefixes, whose attention on the previous token is averaged over positions 1..n_ctx-2 where
     * (previous, current) is a learned prefix ({@code attn_prev_learned}) or not ({@code attn_prev_elsewhere}), and
     * where it is a dataset prefix or not ({@code attn_prev_dataset}, {@code attn_prev_not_dataset}); {@code qk_head}
     * is the head whose prefix advantage separates the dataset's prefixes best ({@code qk_auc}); {@code dla_trigram}
     * the mean DLA of each {@link #DLA_GROUPS} group at trigram positions (the next token completes a trigram), and
     * {@code dla_share} each over the sum of their absolute values; {@code weight_distance} the Frobenius norm of
     * each parameter's change from epoch 0, {@code weight_relative_distance} that over its initial norm (NaN for a
     * parameter that starts at zero). Undefined numbers (training loss at epoch 0, a mean over no position) are NaN.
     */
    public record Snapshot(int epoch, double trainLoss, double trainLossAsFrac, double valLoss,
                           @JsonProperty("trigram_n_correct") int trigramNCorrect,
                           double trigramFracCorrect, double trigramAvgCorrectProb, int nExtracted,
                           int nExtractedInDataset, List<int[]> extracted, double qkAuc, String qkHead,
                           String attnHead, int nLearnedPositions, double attnPrevLearned, double attnPrevElsewhere,
                           double attnPrevDataset, double attnPrevNotDataset, Map<String, Double> dlaTrigram,
                           Map<String, Double> dlaShare, Map<String, Double> weightDistance,
                           Map<String, Double> weightRelativeDistance, FinalPosition finalPosition) {
    }

    /**
     * W_pos[n_ctx-1] (never trained: the last position predicts nothing) against the other rows: its norm, distance
     * from and cosine with its initial value, and the medians of the same over rows 0..n_ctx-2.
     */
    public record FinalPosition(int position, double norm, double medianOtherNorm, double distanceFromInitial,
                                double medianOtherDistanceFromInitial, double cosineWithInitial,
                                double medianOtherCosineWithInitial) {
    }

    /**
     * One trigram: learned_epoch (see the class comment), first_epoch (the first snapshot extracting it, null if
     * none), count (occurrences of a, b, c in a row in the training sequences), shares_b (another dataset trigram
     * has the same b), in_dataset (false for a triple extracted at the end that is not one of the dataset's).
     */
    public record Trigram(int a, int b, int c, Integer learnedEpoch, Integer firstEpoch, int count, boolean sharesB,
                          boolean inDataset) {
    }

    /** A phase change of metric at epoch (from the snapshot of fromEpoch, value from, to value to). */
    public record PhaseChange(String metric, int epoch, int fromEpoch, double from, double to, double changePerEpoch) {
    }

    /** How many dataset trigrams were learned by epoch (snapshotEpoch: the last snapshot at or before it). */
    public record Milestone(int epoch, int snapshotEpoch, int nLearned) {
    }

    /**
     * Learning order against frequency over the dataset trigrams: Spearman's rho between count and learned epoch
     * (those never learned rank last, tied), its two-sided permutation p-value, and the verdict by {@link #ORDER_RULE};
     * then the trigrams sharing their b against the others: mean learned epoch (of those learned) and share learned.
     */
    public record Order(int n, double spearman, double pValue, String verdict, String rule, int nSharedB,
                        int nOtherB, double meanEpochSharedB, double meanEpochOtherB, double fracLearnedSharedB,
                        double fracLearnedOtherB) {
    }

    static final String ORDER_RULE = String.format(Locale.ROOT, "with Spearman's rho between a trigram's count in "
            + "the training data and its learned epoch, and a permutation p below %.2f: follows frequency (frequent "
            + "ones first) at rho -%.1f or less, weakly between that and 0; goes against it at +%.1f or more, weakly "
            + "below; with p at %.2f or more it does not follow it", ORDER_P, ORDER_RHO, ORDER_RHO, ORDER_P);

    /**
     * When attention to the prefix appeared relative to the MLP's contribution ({@link #ONSET_RULE}): the attention
     * measure is attn_prev_dataset - attn_prev_not_dataset, the MLP's is dla_trigram.mlp; each with its value at
     * epoch 0 and at the last snapshot, the epoch it appeared and the epoch it was half-way (null: it did not rise);
     * verdict "attention_first", "mlp_first", "together", or "attention_only", "mlp_only", "neither".
     */
    public record Onset(String rule, double attentionFrom, double attentionTo, Integer attentionEpoch,
                        Integer attentionHalfEpoch, double mlpFrom, double mlpTo, Integer mlpEpoch,
                        Integer mlpHalfEpoch, String verdict) {
    }

    /** dynamics.json. */
    public record Result(String run, TrainConfig config, int snapshotEvery, int evalSize, int nTrigrams,
                         List<Integer> missingEpochs, List<String> notes, List<String> summary, Onset onset,
                         List<Milestone> milestones, Order order, String phaseRule, List<PhaseChange> phaseChanges,
                         List<Snapshot> snapshots, List<Trigram> trigrams, double seconds) {
    }

    /** Called once per snapshot analysed, from any worker thread. */
    public interface Progress {
        void done(int epoch, int nDone, int nTotal);
    }

    public static Result compute(RunSnapshots run, int evalSize, Progress progress) {
        long t0 = System.nanoTime();
        TrainConfig cfg = run.config();
        TrigramDataset eval = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(), cfg.dataSeed(),
                evalSize);
        boolean[] datasetPrefix = QkCircuit.prefixMask(eval);

        List<Integer> epochs = new ArrayList<>(run.weights().keySet());
        Weights initial = run.weights().get(0);
        Snapshot[] snaps = new Snapshot[epochs.size()];
        int[][] completions = new int[epochs.size()][];
        int[][] tripleCounts = {null};
        int[] done = {0};
        Parallel.forEachItem(epochs.size(), (worker, i) -> {
            int epoch = epochs.get(i);
            Weights w = run.weights().get(epoch);
            double valLoss;
            if (i == 0) {
                // the run's own sequences, generated by the first item while the other workers start on snapshots:
                // what it trained on (counts) and validated on (epoch 0's loss)
                TrigramDataset all = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(),
                        cfg.dataSeed(), cfg.nTrain() + cfg.nVal());
                DataOrder split = DataOrder.of(all, cfg.nTrain(), cfg.nVal());
                tripleCounts[0] = tripleCounts(all, split.trainIndices());
                int[] valTokens = Trainer.gather(all.tokens(), split.validationIndices(), cfg.seqLen());
                // epoch 0 has no line in metrics.jsonl: its validation loss by the evaluation's forward pass, whose
                // kernels every snapshot runs anyway (the training ones would be compiled for this one pass)
                valLoss = epoch == 0 ? Metrics.loss(new HookedTransformer(w).forward(valTokens, cfg.nVal(),
                        cfg.seqLen()), valTokens) : run.metrics().get(epoch).valLoss();
            } else {
                valLoss = run.metrics().get(epoch).valLoss();
            }
            TrigramExtractor.Triples table = TrigramExtractor.extractTriples(w);
            completions[i] = completions(table);
            snaps[i] = snapshot(run, epoch, w, initial, table, valLoss, eval, datasetPrefix);
            int n;
            synchronized (done) {
                n = ++done[0];
            }
            progress.done(epoch, n, epochs.size());
        });
        List<Snapshot> snapshots = List.of(snaps);
        List<Trigram> trigrams = trigrams(eval, epochs, completions, tripleCounts[0]);
        Onset onset = onset(snapshots);
        List<Milestone> milestones = milestones(epochs, trigrams, cfg.epochs());
        Order order = order(trigrams);
        List<PhaseChange> phases = phaseChanges(snapshots);
        List<String> summary = summary(eval.nTrigrams(), snapshots, onset, milestones, order, phases);
        return new Result(run.dir().toString(), cfg, run.interval(), evalSize, eval.nTrigrams(),
                run.missing(), run.notes(), summary, onset, milestones, order, PHASE_RULE, phases, snapshots,
                trigrams, (System.nanoTime() - t0) / 1e9);
    }

    // -------------------------------------------------------------------------------------------------------------
    // One snapshot

    private static Snapshot snapshot(RunSnapshots run, int epoch, Weights w, Weights initial,
                                     TrigramExtractor.Triples table, double valLoss, TrigramDataset eval,
                                     boolean[] datasetPrefix) {
        HookedTransformer model = new HookedTransformer(w);
        // the score read computed to check the snapshot: the trigrams' batch is eval's (the run's generator)
        Metrics.TrigramScore tri = run.scores().get(epoch);
        double trainLoss = Double.NaN, trainLossAsFrac = Double.NaN;
        if (epoch > 0) {
            Trainer.EpochMetrics m = run.metrics().get(epoch);
            trainLoss = m.trainLoss();
            trainLossAsFrac = m.trainLossAsFrac();
        }
        int nInDataset = 0;
        List<int[]> extracted = new ArrayList<>();
        for (int[] t : table.triples()) {
            extracted.add(t);
            nInDataset += eval.completionOf(t[0], t[1]) == t[2] ? 1 : 0;
        }

        int B = eval.size(), T = eval.seqLen(), H = w.cfg.nHeads();
        String pattern = HookNames.full("pattern", 0);
        Explanation.PrefixAttention.Sums learnedSums = new Explanation.PrefixAttention.Sums(H);
        Explanation.PrefixAttention.Sums datasetSums = new Explanation.PrefixAttention.Sums(H);
        DlaSums dlaSums = new DlaSums();
        Attribution.Readout readout = new Attribution.Readout(model);
        // a chunk of sequences at a time (EVAL_CHUNK): the sums add up in the same order whatever its size
        for (int from = 0; from < B; from += EVAL_CHUNK) {
            TrigramDataset part = eval.slice(from, Math.min(B, from + EVAL_CHUNK));
            int n = part.size();
            int[] tokens = part.tokens();
            // no logits: the attribution reads its positions' from the unembed's input (a third of the pass saved)
            HookedTransformer.Run pass = model.run(tokens, n, T,
                    Attribution.cachedWithoutLogits(w.cfg).or(pattern::equals), List.of(), false);
            // closed, so its buffers go to the next chunk's pass
            try (ActivationCache cache = pass.cache()) {
                learnedSums.add(cache.get(pattern), part, table.prefixTable());
                datasetSums.add(cache.get(pattern), part, datasetPrefix);
                // only the trigram positions are attributed: the others are a twentieth as many and unused here
                dlaSums.add(readout.perPosition(pass, n, T, T - 1,
                        (s, p) -> part.completesTrigram(s, p + 1) ? tokens[s * T + p + 1] : -1), part);
            }
        }
        Explanation.PrefixAttention learned = learnedSums.best(), dataset = datasetSums.best();
        Map<String, Double> dla = dlaSums.means();
        double absSum = 0;
        for (double v : dla.values()) {
            absSum += Math.abs(v);
        }
        Map<String, Double> share = new LinkedHashMap<>();
        for (Map.Entry<String, Double> e : dla.entrySet()) {
            share.put(e.getKey(), absSum == 0 ? Double.NaN : e.getValue() / absSum);
        }

        String[] qkHead = {null};
        double qkAuc = qkAuc(w, datasetPrefix, qkHead);
        Map<String, Double> dist = new LinkedHashMap<>(), rel = new LinkedHashMap<>();
        for (ParamLayout.Param p : w.layout.params()) {
            double d = distance(w.data, initial.data, p.offset(), p.offset(), p.size());
            double n0 = Worklog.norm(initial.data, p.offset(), p.size());
            dist.put(p.name(), d);
            rel.put(p.name(), n0 == 0 ? Double.NaN : d / n0);
        }
        return new Snapshot(epoch, trainLoss, trainLossAsFrac, valLoss, tri.nCorrect(), tri.fracCorrect(),
                tri.avgCorrectProb(), table.triples().size(), nInDataset, extracted, qkAuc, qkHead[0],
                learned.head(), learned.nLearnedPositions(), learned.prevAtLearned(), learned.prevElsewhere(),
                dataset.prevAtLearned(), dataset.prevElsewhere(), dla, share, dist, rel,
                finalPosition(w, initial));
    }

    /** completion[a * V + b]: the extracted c, or -1. */
    private static int[] completions(TrigramExtractor.Triples table) {
        int V = table.dVocab();
        int[] c = new int[V * V];
        Arrays.fill(c, -1);
        for (int[] t : table.triples()) {
            c[t[0] * V + t[1]] = t[2];
        }
        return c;
    }

    /** The mean DLA of each group at the positions whose next token completes a trigram (NaN when there is none). */
    static Map<String, Double> dlaAtTrigrams(Attribution.Table table, TrigramDataset data) {
        DlaSums sums = new DlaSums();
        sums.add(table, data);
        return sums.means();
    }

    /** The sums behind {@link #dlaAtTrigrams}, added a batch of sequences at a time. */
    static final class DlaSums {
        private final double[] sums = new double[DLA_GROUPS.size()];
        private int n;

        void add(Attribution.Table table, TrigramDataset data) {
            int B = data.size(), P = data.seqLen() - 1;
            int[] groupOf = new int[table.names().size()];
            for (int c = 0; c < groupOf.length; c++) {
                groupOf[c] = DLA_GROUPS.indexOf(group(table.names().get(c)));
            }
            for (int s = 0; s < B; s++) {
                for (int p = 0; p < P; p++) {
                    if (!data.completesTrigram(s, p + 1)) {
                        continue;
                    }
                    n++;
                    for (int c = 0; c < table.names().size(); c++) {
                        sums[groupOf[c]] += table.values()[c][s * P + p];
                    }
                }
            }
        }

        Map<String, Double> means() {
            Map<String, Double> out = new LinkedHashMap<>();
            for (int g = 0; g < sums.length; g++) {
                out.put(DLA_GROUPS.get(g), n == 0 ? Double.NaN : sums[g] / n);
            }
            return out;
        }
    }

    private static final java.util.regex.Pattern HEAD_COMPONENT = java.util.regex.Pattern.compile("L\\d+H\\d+");

    /** The group of an {@link Attribution} component: embed, pos_embed; LlHh, Ll.b_O; Ll.mlp_out; b_U, ln_final.b. */
    static String group(String component) {
        if (component.equals("embed") || component.equals("pos_embed")) {
            return "embeddings";
        }
        if (component.endsWith(".mlp_out")) {
            return "mlp";
        }
        if (HEAD_COMPONENT.matcher(component).matches() || component.endsWith(".b_O")) {
            return "attention";
        }
        return "bias";
    }

    /** The best AUC over layer 0's heads of the prefix advantage for the dataset's prefixes; head[0] gets its name. */
    private static double qkAuc(Weights w, boolean[] datasetPrefix, String[] head) {
        Weights cw = Circuits.circuitWeights(w).weights();
        int[] positions = QkCircuit.defaultPositions(w.cfg.nCtx());
        double best = Double.NaN;
        for (int h = 0; h < w.cfg.nHeads(); h++) {
            double auc = Stats.rocAuc(QkCircuit.advantage(QkCircuit.advantageComponents(
                    QkDecomposition.of(cw, 0, h), positions)), datasetPrefix);
            if (head[0] == null || auc > best) {
                best = auc;
                head[0] = WeightMatrices.headName(0, h);
            }
        }
        return best;
    }

    private static FinalPosition finalPosition(Weights w, Weights initial) {
        int N = w.cfg.nCtx(), D = w.cfg.dModel();
        int off = w.offset(ParamLayout.W_POS);
        double[] norm = new double[N - 1], dist = new double[N - 1], cos = new double[N - 1];
        for (int j = 0; j < N - 1; j++) {
            norm[j] = Worklog.norm(w.data, off + j * D, D);
            dist[j] = distance(w.data, initial.data, off + j * D, off + j * D, D);
            cos[j] = cosine(w.data, initial.data, off + j * D, D);
        }
        int last = off + (N - 1) * D;
        return new FinalPosition(N - 1, Worklog.norm(w.data, last, D), TrigramExtractor.median(norm, N - 1),
                distance(w.data, initial.data, last, last, D), TrigramExtractor.median(dist, N - 1),
                cosine(w.data, initial.data, last, D), TrigramExtractor.median(cos, N - 1));
    }

    private static double distance(float[] a, float[] b, int offA, int offB, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            double d = (double) a[offA + i] - b[offB + i];
            s += d * d;
        }
        return Math.sqrt(s);
    }

    private static double cosine(float[] a, float[] b, int off, int n) {
        double den = Worklog.norm(a, off, n) * Worklog.norm(b, off, n);
        return den == 0 ? Double.NaN : Worklog.dot(a, b, off, off, n) / den;
    }

    // -------------------------------------------------------------------------------------------------------------
    // Per trigram

    /** counts[(a * V + b) * V + c]: how often a, b, c occur in a row in the given sequences. */
    static int[] tripleCounts(TrigramDataset data, int[] sequences) {
        int V = data.dVocab(), T = data.seqLen();
        int[] tokens = data.tokens();
        int[] counts = new int[V * V * V];
        for (int s : sequences) {
            for (int p = s * T; p + 2 < (s + 1) * T; p++) {
                counts[(tokens[p] * V + tokens[p + 1]) * V + tokens[p + 2]]++;
            }
        }
        return counts;
    }

    /** The dataset's trigrams in generation order, then those extracted at the last snapshot that are not theirs. */
    private static List<Trigram> trigrams(TrigramDataset data, List<Integer> epochs, int[][] completions,
                                          int[] tripleCounts) {
        int V = data.dVocab();
        int[] bCount = new int[V];
        for (int[] t : data.trigrams()) {
            bCount[t[1]]++;
        }
        List<int[]> triples = new ArrayList<>(List.of(data.trigrams()));
        int[] last = completions[completions.length - 1];
        for (int ab = 0; ab < V * V; ab++) {
            if (last[ab] >= 0 && data.completionOf(ab / V, ab % V) != last[ab]) {
                triples.add(new int[] {ab / V, ab % V, last[ab]});
            }
        }
        List<Trigram> out = new ArrayList<>();
        for (int[] t : triples) {
            int ab = t[0] * V + t[1];
            Integer first = null, learned = null;
            for (int k = 0; k < epochs.size(); k++) {
                if (completions[k][ab] == t[2]) {
                    first = epochs.get(k);
                    break;
                }
            }
            for (int k = epochs.size() - 1; k >= 0 && completions[k][ab] == t[2]; k--) {
                learned = epochs.get(k);
            }
            boolean inDataset = data.completionOf(t[0], t[1]) == t[2];
            out.add(new Trigram(t[0], t[1], t[2], learned, first, tripleCounts[ab * V + t[2]],
                    inDataset ? bCount[t[1]] > 1 : bCount[t[1]] > 0, inDataset));
        }
        return out;
    }

    private static List<Milestone> milestones(List<Integer> epochs, List<Trigram> trigrams, int runEpochs) {
        List<Milestone> out = new ArrayList<>();
        for (int m : MILESTONES) {
            if (m > runEpochs || m > epochs.get(epochs.size() - 1)) {
                continue;
            }
            int at = 0;
            for (int e : epochs) {
                if (e <= m) {
                    at = e;
                }
            }
            int n = 0;
            for (Trigram t : trigrams) {
                n += t.inDataset() && t.learnedEpoch() != null && t.learnedEpoch() <= at ? 1 : 0;
            }
            out.add(new Milestone(m, at, n));
        }
        return out;
    }

    static Order order(List<Trigram> trigrams) {
        List<Trigram> ds = trigrams.stream().filter(Trigram::inDataset).toList();
        int n = ds.size();
        double[] count = new double[n], epoch = new double[n];
        double shared = 0, other = 0, sharedLearned = 0, otherLearned = 0, sharedSum = 0, otherSum = 0;
        for (int i = 0; i < n; i++) {
            Trigram t = ds.get(i);
            count[i] = t.count();
            epoch[i] = t.learnedEpoch() == null ? Double.POSITIVE_INFINITY : t.learnedEpoch();
            if (t.sharesB()) {
                shared++;
                if (t.learnedEpoch() != null) {
                    sharedLearned++;
                    sharedSum += t.learnedEpoch();
                }
            } else {
                other++;
                if (t.learnedEpoch() != null) {
                    otherLearned++;
                    otherSum += t.learnedEpoch();
                }
            }
        }
        double[] rc = ranks(count), re = ranks(epoch);
        double rho = pearson(rc, re);
        double p = Double.NaN;
        if (!Double.isNaN(rho)) {
            // fixed seed: the same run gives the same p
            Random rng = new Random(1);
            double[] shuffled = re.clone();
            int extreme = 0;
            for (int k = 0; k < PERMUTATIONS; k++) {
                for (int i = n - 1; i > 0; i--) {
                    int j = rng.nextInt(i + 1);
                    double x = shuffled[i];
                    shuffled[i] = shuffled[j];
                    shuffled[j] = x;
                }
                extreme += Math.abs(pearson(rc, shuffled)) >= Math.abs(rho) - 1e-12 ? 1 : 0;
            }
            p = (extreme + 1.0) / (PERMUTATIONS + 1.0);
        }
        String verdict = Double.isNaN(rho) ? "undefined" : !(p < ORDER_P) ? "does_not_follow"
                : rho <= -ORDER_RHO ? "follows" : rho < 0 ? "weakly_follows" : rho >= ORDER_RHO ? "against"
                : "weakly_against";
        return new Order(n, rho, p, verdict, ORDER_RULE, (int) shared, (int) other,
                sharedLearned == 0 ? Double.NaN : sharedSum / sharedLearned,
                otherLearned == 0 ? Double.NaN : otherSum / otherLearned,
                shared == 0 ? Double.NaN : sharedLearned / shared, other == 0 ? Double.NaN : otherLearned / other);
    }

    /** 1-based ranks, ties sharing their mean rank (infinity ties with infinity). */
    static double[] ranks(double[] v) {
        int n = v.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Double.compare(v[x], v[y]));
        double[] r = new double[n];
        for (int i = 0; i < n; ) {
            int j = i;
            while (j + 1 < n && Double.compare(v[order[j + 1]], v[order[i]]) == 0) {
                j++;
            }
            for (int t = i; t <= j; t++) {
                r[order[t]] = (i + j) / 2.0 + 1;
            }
            i = j + 1;
        }
        return r;
    }

    /** Pearson's correlation; NaN when either side is constant or there are fewer than 3 values. */
    static double pearson(double[] x, double[] y) {
        int n = x.length;
        if (n < 3) {
            return Double.NaN;
        }
        double mx = 0, my = 0;
        for (int i = 0; i < n; i++) {
            mx += x[i] / n;
            my += y[i] / n;
        }
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++) {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxx == 0 || syy == 0 ? Double.NaN : sxy / Math.sqrt(sxx * syy);
    }

    // -------------------------------------------------------------------------------------------------------------
    // Over the run

    private static Map<String, ToDoubleFunction<Snapshot>> phaseMetrics() {
        Map<String, ToDoubleFunction<Snapshot>> m = new LinkedHashMap<>();
        m.put("trigram_avg_correct_prob", Snapshot::trigramAvgCorrectProb);
        m.put("n_extracted", Snapshot::nExtracted);
        m.put("qk_auc", Snapshot::qkAuc);
        m.put("attn_prev_dataset", Snapshot::attnPrevDataset);
        m.put("dla_mlp", s -> s.dlaTrigram().get("mlp"));
        m.put("val_loss", Snapshot::valLoss);
        return m;
    }

    static List<PhaseChange> phaseChanges(List<Snapshot> snapshots) {
        List<PhaseChange> out = new ArrayList<>();
        int n = snapshots.size();
        for (Map.Entry<String, ToDoubleFunction<Snapshot>> e : PHASE_METRICS.entrySet()) {
            double[] x = new double[n];
            int[] epoch = new int[n];
            for (int i = 0; i < n; i++) {
                x[i] = e.getValue().applyAsDouble(snapshots.get(i));
                epoch[i] = snapshots.get(i).epoch();
            }
            for (int k : phaseSteps(x, epoch)) {
                out.add(new PhaseChange(e.getKey(), epoch[k], epoch[k - 1], x[k - 1], x[k],
                        (x[k] - x[k - 1]) / (epoch[k] - epoch[k - 1])));
            }
        }
        out.sort((a, b) -> Integer.compare(a.epoch(), b.epoch()));
        return out;
    }

    /** The indices k (step from k-1 to k) where the series x over epochs changes phase by {@link #PHASE_RULE}. */
    static List<Integer> phaseSteps(double[] x, int[] epoch) {
        int n = x.length;
        double[] rate = new double[n];
        List<Double> finite = new ArrayList<>();
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
        for (int k = 0; k < n; k++) {
            if (Double.isFinite(x[k])) {
                lo = Math.min(lo, x[k]);
                hi = Math.max(hi, x[k]);
            }
            rate[k] = k == 0 ? Double.NaN : Math.abs(x[k] - x[k - 1]) / (epoch[k] - epoch[k - 1]);
            if (Double.isFinite(rate[k])) {
                finite.add(rate[k]);
            }
        }
        List<Integer> out = new ArrayList<>();
        if (finite.isEmpty() || !(hi > lo)) {
            return out;
        }
        double[] sorted = finite.stream().mapToDouble(Double::doubleValue).toArray();
        double median = TrigramExtractor.median(sorted, sorted.length);
        for (int k = 1; k < n; k++) {
            double r = rate[k];
            if (!Double.isFinite(r) || r < PHASE_MEDIAN_FACTOR * median || r < PHASE_RANGE_SHARE * (hi - lo)
                    || r == 0) {
                continue;
            }
            boolean largest = true;
            for (int j = Math.max(1, k - PHASE_WINDOW); j <= Math.min(n - 1, k + PHASE_WINDOW); j++) {
                // ties go to the earlier step
                largest &= j == k || !(rate[j] > r || rate[j] == r && j < k);
            }
            if (largest) {
                out.add(k);
            }
        }
        return out;
    }

    static Onset onset(List<Snapshot> snapshots) {
        ToDoubleFunction<Snapshot> attention = s -> s.attnPrevDataset() - s.attnPrevNotDataset();
        ToDoubleFunction<Snapshot> mlp = s -> s.dlaTrigram().get("mlp");
        Snapshot first = snapshots.get(0), last = snapshots.get(snapshots.size() - 1);
        Integer a = covered(snapshots, attention, MIN_ATTENTION_RISE, APPEARED);
        Integer m = covered(snapshots, mlp, MIN_MLP_RISE, APPEARED);
        String verdict = a == null && m == null ? "neither" : a == null ? "mlp_only" : m == null ? "attention_only"
                : a < m ? "attention_first" : a > m ? "mlp_first" : "together";
        return new Onset(ONSET_RULE, attention.applyAsDouble(first), attention.applyAsDouble(last), a,
                covered(snapshots, attention, MIN_ATTENTION_RISE, 0.5), mlp.applyAsDouble(first),
                mlp.applyAsDouble(last), m, covered(snapshots, mlp, MIN_MLP_RISE, 0.5), verdict);
    }

    /**
     * The first snapshot's epoch at which the series has covered share of its rise from the first snapshot to the
     * last; null when it rose less than minRise.
     */
    private static Integer covered(List<Snapshot> snapshots, ToDoubleFunction<Snapshot> f, double minRise,
                                   double share) {
        double from = f.applyAsDouble(snapshots.get(0)), to = f.applyAsDouble(snapshots.get(snapshots.size() - 1));
        if (!(to - from >= minRise)) {
            return null;
        }
        for (Snapshot s : snapshots) {
            if (f.applyAsDouble(s) - from >= share * (to - from)) {
                return s.epoch();
            }
        }
        return null;
    }

    // -------------------------------------------------------------------------------------------------------------
    // In words

    private static List<String> summary(int nTrigrams, List<Snapshot> snapshots, Onset onset,
                                        List<Milestone> milestones, Order order, List<PhaseChange> phases) {
        Snapshot last = snapshots.get(snapshots.size() - 1);
        List<String> s = new ArrayList<>();
        s.add(onsetSentence(onset, last));
        s.add(milestoneSentence(nTrigrams, snapshots, milestones));
        s.add(orderSentence(order));
        s.add(phaseSentence(phases));
        s.add(finalPositionSentence(last.finalPosition()));
        s.add(movedSentence(last));
        return s;
    }

    static String onsetSentence(Onset o, Snapshot last) {
        String att = String.format(Locale.ROOT, "head %s's extra attention on the previous token at the dataset's "
                + "prefixes (over other positions, %+.2f to %+.2f)%s", last.attnHead(), o.attentionFrom(),
                o.attentionTo(), when(o.attentionEpoch(), o.attentionHalfEpoch()));
        String mlp = String.format(Locale.ROOT, "the MLP's direct logit attribution to the next token at trigram "
                + "positions (%+.2f to %+.2f)%s", o.mlpFrom(), o.mlpTo(), when(o.mlpEpoch(), o.mlpHalfEpoch()));
        String what = switch (o.verdict()) {
            case "attention_first" -> "Attention to the prefix appeared before the MLP's contribution: " + att + "; "
                    + mlp + ".";
            case "mlp_first" -> "The MLP's contribution appeared before attention to the prefix: " + mlp + "; " + att
                    + ".";
            case "together" -> "Attention to the prefix and the MLP's contribution appeared in the same snapshot: "
                    + att + "; " + mlp + ".";
            case "attention_only" -> "Attention to the prefix appeared, the MLP's contribution did not: " + att + "; "
                    + mlp + ".";
            case "mlp_only" -> "The MLP's contribution appeared, attention to the prefix did not: " + mlp + "; " + att
                    + ".";
            default -> "Neither attention to the prefix nor the MLP's contribution appeared: " + att + "; " + mlp
                    + ".";
        };
        return capital(what) + " (" + capital(ONSET_RULE) + ".)";
    }

    /** ", a tenth of its rise by epoch e, half by epoch h", or " never rose enough to count". */
    private static String when(Integer appeared, Integer half) {
        return appeared == null ? " never rose enough to count" : String.format(Locale.ROOT, " covered a tenth of "
                + "its rise by epoch %d and half by epoch %d", appeared, half);
    }

    static String milestoneSentence(int nTrigrams, List<Snapshot> snapshots, List<Milestone> milestones) {
        Snapshot last = snapshots.get(snapshots.size() - 1);
        List<String> by = new ArrayList<>();
        for (Milestone m : milestones) {
            Snapshot at = snapshots.stream().filter(x -> x.epoch() == m.snapshotEpoch()).findFirst().orElseThrow();
            by.add(String.format(Locale.ROOT, "%d by epoch %d%s (%d right by argmax)", m.nLearned(), m.epoch(),
                    m.snapshotEpoch() == m.epoch() ? "" : " (its last snapshot, epoch " + m.snapshotEpoch() + ")",
                    at.trigramNCorrect()));
        }
        by.add(String.format(Locale.ROOT, "%d by the last snapshot, epoch %d (%d right by argmax)",
                last.nExtractedInDataset(), last.epoch(), last.trigramNCorrect()));
        List<String> beyond = new ArrayList<>();
        for (int m : MILESTONES) {
            if (milestones.stream().noneMatch(x -> x.epoch() == m)) {
                beyond.add(Integer.toString(m));
            }
        }
        return String.format(Locale.ROOT, "Trigrams learned, of the dataset's %d: %s, with %d triples read from the "
                        + "weights in all at the end%s. A trigram counts as learned from the snapshot where the "
                        + "extractor reads it from the weights and keeps reading it to the end.", nTrigrams,
                joinAnd(by), last.nExtracted(), beyond.isEmpty() ? ""
                        : "; the snapshots end before epoch " + joinAnd(beyond));
    }

    static String orderSentence(Order o) {
        String verdict = switch (o.verdict()) {
            case "follows" -> "Learning order follows frequency: trigrams seen more often in training were learned "
                    + "earlier";
            case "against" -> "Learning order goes against frequency: trigrams seen more often in training were "
                    + "learned later";
            case "weakly_follows" -> "Learning order follows frequency only weakly: trigrams seen more often in "
                    + "training were learned a little earlier";
            case "weakly_against" -> "Learning order goes weakly against frequency: trigrams seen more often in "
                    + "training were learned a little later";
            case "does_not_follow" -> "Learning order does not follow frequency";
            default -> "Learning order against frequency is undefined (the counts or the epochs do not vary)";
        };
        String shared = String.format(Locale.ROOT, " The %d trigrams whose b is also another trigram's b were learned "
                        + "at epoch %s on average and %s of them by the end, against %s and %s of the other %d.",
                o.nSharedB(), fmt1(o.meanEpochSharedB()), pct(o.fracLearnedSharedB()), fmt1(o.meanEpochOtherB()),
                pct(o.fracLearnedOtherB()), o.nOtherB());
        return String.format(Locale.ROOT, "%s (Spearman's rho %+.2f between count and learned epoch over %d "
                + "trigrams, the never-learned counted last; permutation p %s).", verdict, o.spearman(), o.n(),
                o.pValue() < 1.0 / PERMUTATIONS ? "< " + fmt4(1.0 / PERMUTATIONS) : fmt4(o.pValue())) + shared;
    }

    static String phaseSentence(List<PhaseChange> phases) {
        if (phases.isEmpty()) {
            return "No phase change: no metric jumps by the rule (" + PHASE_RULE + ").";
        }
        List<String> parts = new ArrayList<>();
        for (PhaseChange p : phases) {
            parts.add(String.format(Locale.ROOT, "%s at epoch %d (%s to %s)", p.metric(), p.epoch(), num(p.from()),
                    num(p.to())));
        }
        return "Phase changes, marked on the curves: " + String.join("; ", parts) + ". Rule: " + PHASE_RULE + ".";
    }

    static String finalPositionSentence(FinalPosition f) {
        boolean untouched = f.distanceFromInitial() < UNTRAINED_SHARE * f.medianOtherDistanceFromInitial();
        return String.format(Locale.ROOT, "W_pos[%d] moved %.3f from its initial value by the last snapshot (cosine "
                        + "%.3f with it), the other rows %.3f (median; cosine %.3f): %s", f.position(),
                f.distanceFromInitial(), f.cosineWithInitial(), f.medianOtherDistanceFromInitial(),
                f.medianOtherCosineWithInitial(), untouched ? "under a tenth of that, so the final position was "
                        + "never trained, as the worklog guessed." : "more than a tenth of that, so the final "
                        + "position's row was trained too.");
    }

    private static String movedSentence(Snapshot last) {
        List<Map.Entry<String, Double>> rel = new ArrayList<>(last.weightRelativeDistance().entrySet());
        rel.removeIf(e -> !Double.isFinite(e.getValue()));
        rel.sort((x, y) -> Double.compare(y.getValue(), x.getValue()));
        List<String> parts = new ArrayList<>();
        for (int i = 0; i < Math.min(3, rel.size()); i++) {
            parts.add(String.format(Locale.ROOT, "%s %.2f", rel.get(i).getKey(), rel.get(i).getValue()));
        }
        return "Moved most from their initial values (distance over initial norm, at the last snapshot): "
                + String.join(", ", parts) + ".";
    }

    /** "a", "a and b", "a, b and c". */
    static String joinAnd(List<String> items) {
        int n = items.size();
        return n <= 1 ? String.join("", items)
                : String.join(", ", items.subList(0, n - 1)) + " and " + items.get(n - 1);
    }

    private static String capital(String s) {
        return Character.toUpperCase(s.charAt(0)) + s.substring(1);
    }

    private static String fmt1(double v) {
        return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%.1f", v);
    }

    private static String fmt4(double v) {
        return String.format(Locale.ROOT, "%.4f", v);
    }

    private static String pct(double v) {
        return Double.isNaN(v) ? "n/a" : String.format(Locale.ROOT, "%.0f%%", 100 * v);
    }

    private static String num(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e9 ? String.format(Locale.ROOT, "%.0f", v)
                : Math.abs(v) >= 10 ? String.format(Locale.ROOT, "%.1f", v) : String.format(Locale.ROOT, "%.3f", v);
    }
}
