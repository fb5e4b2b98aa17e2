package dev.trilens.sweep;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.trilens.TrilensException;
import dev.trilens.cli.TrainCommand;
import dev.trilens.io.FileText;
import dev.trilens.train.TrainConfig;
import java.io.IOException;
import java.io.Serializable;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine;

/**
 * A sweep's grid file (YAML): {@code preset}, optional fixed {@code train} flags and {@code axes}, each axis a train
 * flag without its dashes mapped to a list of values. The runs are the cross product of the axes. Every value is
 * checked by train's own flag parsing ({@link TrainCommand#configOf}), and every run's config built, when the file is
 * read: a bad grid is a one-line error before any run starts.
 *
 * <pre>
 * preset: quick
 * train: {epochs: 20}
 * axes: {d_mlp: [0, 20], init_seed: [0, 1, 2]}
 * </pre>
 */
public final class Grid {

    /** The axes that repeat a grid point rather than define one: sweep.md and the figures average over them. */
    public static final List<String> SEED_AXES = List.of("seed", "data_seed", "init_seed");

    /** Axis (and fixed flag) names, in the order run ids list them: train's config flags without the preset. */
    public static final List<String> NAMES = TrainCommand.CONFIG_FLAGS.stream().filter(f -> !f.equals("--preset"))
            .map(f -> f.substring(2).replace('-', '_')).toList();

    private static final List<String> KEYS = List.of("preset", "train", "axes");

    /** One axis: its name, train flag, the flag's value type and the values in the file's order, as train reads them. */
    public record Axis(String name, String flag, Class<?> type, List<String> values) {
        public boolean isSeed() {
            return SEED_AXES.contains(name);
        }

        public boolean isBoolean() {
            return type == boolean.class || type == Boolean.class;
        }

        public boolean isNumeric() {
            return !isBoolean() && type != String.class;
        }
    }

    /**
     * One run: its stable id, the train flags that make it and its value on each axis. Sent to Spark's executors
     * as is (hence Serializable), where the flags make its config again.
     */
    public record Run(String id, List<String> flags, Map<String, String> axes) implements Serializable {
        public TrainConfig config() {
            return TrainCommand.configOf(flags);
        }
    }

    private final String source;
    private final String preset;
    private final Map<String, String> fixed;
    private final List<Axis> axes;

    private Grid(String source, String preset, Map<String, String> fixed, List<Axis> axes) {
        this.source = source;
        this.preset = preset;
        this.fixed = fixed;
        this.axes = axes;
    }

    public static Grid read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new TrilensException("grid file " + file + " not found; expected a YAML file with preset, train and "
                    + "axes");
        } catch (IOException e) {
            throw new TrilensException("cannot read grid file " + file + ": " + FileText.show(String.valueOf(
                    e.getMessage())));
        }
        return parse(text, file.getFileName().toString());
    }

    /** Parses and checks a grid; where names it in error messages. */
    public static Grid parse(String yaml, String where) {
        JsonNode root;
        try {
            root = new ObjectMapper(new YAMLFactory()).enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
                    .readTree(yaml);
        } catch (JsonProcessingException e) {
            String at = e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr() + ", column "
                    + e.getLocation().getColumnNr();
            throw new TrilensException(where + " is not a valid grid file: " + FileText.show(e.getOriginalMessage())
                    + at + "; expected YAML with preset, train and axes");
        }
        if (root == null || root.isMissingNode() || root.isNull()) {
            throw new TrilensException(where + " is empty; expected YAML with preset, train and axes");
        }
        if (!root.isObject()) {
            throw new TrilensException(where + " holds a " + kind(root) + "; expected a mapping with preset, train "
                    + "and axes");
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!KEYS.contains(key)) {
                throw new TrilensException(where + ": unknown key '" + FileText.show(key) + "', expected "
                        + String.join(", ", KEYS));
            }
        }
        String preset = "arena";
        JsonNode p = root.path("preset");
        if (!p.isMissingNode()) {
            if (!p.isTextual()) {
                throw new TrilensException(where + ": preset is a " + kind(p) + "; expected a preset name such as "
                        + "quick or arena");
            }
            preset = p.asText();
            check(where, "preset", List.of("--preset", preset));
        }
        Map<String, String> fixed = new LinkedHashMap<>();
        JsonNode train = root.path("train");
        if (!train.isMissingNode()) {
            if (!train.isObject()) {
                throw new TrilensException(where + ": train is a " + kind(train) + "; expected a mapping of train "
                        + "flags (without dashes) to values, e.g. {epochs: 20}");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = train.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String name = knownName(where, "train", e.getKey());
                String what = "train." + name;
                String value = value(where, what, flag(name), e.getValue());
                check(where, what + " = " + value, flags(preset, Map.of(name, value)));
                fixed.put(name, value);
            }
        }
        JsonNode axesNode = root.path("axes");
        if (axesNode.isMissingNode() || axesNode.isNull() || (axesNode.isObject() && axesNode.isEmpty())) {
            throw new TrilensException(where + " has no axes; expected axes: mapping at least one train flag to a "
                    + "list of values, e.g. axes: {init_seed: [0, 1, 2]}");
        }
        if (!axesNode.isObject()) {
            throw new TrilensException(where + ": axes is a " + kind(axesNode) + "; expected a mapping of train "
                    + "flags (without dashes) to lists of values");
        }
        Map<String, Axis> byName = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = axesNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = knownName(where, "axes", e.getKey());
            String what = "axes." + name;
            if (fixed.containsKey(name)) {
                throw new TrilensException(where + ": " + name + " is both a fixed train flag and an axis; expected "
                        + "it in one of them");
            }
            JsonNode list = e.getValue();
            if (!list.isArray()) {
                throw new TrilensException(where + ": " + what + " is a " + kind(list) + "; expected a list of "
                        + "values, e.g. [" + (list.isValueNode() ? list.asText() : "1, 2") + "] (a single value goes "
                        + "under train:)");
            }
            if (list.isEmpty()) {
                throw new TrilensException(where + ": " + what + " is empty; expected a list of at least one value");
            }
            LinkedHashSet<String> values = new LinkedHashSet<>();
            for (int i = 0; i < list.size(); i++) {
                String value = value(where, what + "[" + i + "]", flag(name), list.get(i));
                Map<String, String> one = new LinkedHashMap<>(fixed);
                one.put(name, value);
                check(where, what + "[" + i + "] = " + value, flags(preset, one));
                if (!values.add(value)) {
                    throw new TrilensException(where + ": " + what + " lists " + value + " twice; expected each value "
                            + "once");
                }
            }
            byName.put(name, new Axis(name, flag(name), optionType(flag(name)), List.copyOf(values)));
        }
        List<Axis> axes = new ArrayList<>();
        for (String n : NAMES) {
            if (byName.containsKey(n)) {
                axes.add(byName.get(n));
            }
        }
        return new Grid(where, preset, fixed, List.copyOf(axes));
    }

    public String source() {
        return source;
    }

    public String preset() {
        return preset;
    }

    /** The fixed train flags, by name without dashes. */
    public Map<String, String> fixed() {
        return fixed;
    }

    /** The axes in run-id order (train's flag order), whatever their order in the file. */
    public List<Axis> axes() {
        return axes;
    }

    /** The number of runs, without making them (a grid of millions is refused before it is built). */
    public long size() {
        long n = 1;
        for (Axis a : axes) {
            try {
                n = Math.multiplyExact(n, a.values().size());
            } catch (ArithmeticException e) {
                return Long.MAX_VALUE;
            }
        }
        return n;
    }

    /** "d_mlp 4 x d_head 2 x init_seed 3" */
    public String shape() {
        return String.join(" x ", axes.stream().map(a -> a.name() + " " + a.values().size()).toList());
    }

    /**
     * The cross product, the last axis varying fastest, each run with its config; a combination train refuses (e.g.
     * attn_only with a d_mlp) or two runs with the same config are one-line errors.
     */
    public List<Run> runs() {
        List<Run> runs = new ArrayList<>();
        Map<TrainConfig, String> seen = new HashMap<>();
        int[] at = new int[axes.size()];
        for (long k = 0, n = size(); k < n; k++) {
            Map<String, String> values = new LinkedHashMap<>();
            StringBuilder id = new StringBuilder();
            for (int i = 0; i < axes.size(); i++) {
                Axis a = axes.get(i);
                String v = a.values().get(at[i]);
                values.put(a.name(), v);
                id.append(i == 0 ? "" : "_").append(a.name()).append('=').append(v);
            }
            Map<String, String> all = new LinkedHashMap<>(fixed);
            all.putAll(values);
            List<String> flags = flags(preset, all);
            TrainConfig config = check(source, "run " + id, flags);
            String twin = seen.putIfAbsent(config, id.toString());
            if (twin != null) {
                throw new TrilensException(source + ": runs " + twin + " and " + id + " train the same config; "
                        + "expected every run to differ (drop one of the values)");
            }
            runs.add(new Run(id.toString(), List.copyOf(flags), Collections.unmodifiableMap(values)));
            for (int i = axes.size() - 1; i >= 0 && ++at[i] == axes.get(i).values().size(); i--) {
                at[i] = 0;
            }
        }
        return runs;
    }

    /** The train flags for a preset and values by name; a boolean flag appears when true. */
    static List<String> flags(String preset, Map<String, String> values) {
        List<String> flags = new ArrayList<>(List.of("--preset", preset));
        for (String name : NAMES) {
            String v = values.get(name);
            if (v == null) {
                continue;
            }
            String flag = flag(name);
            if (isBooleanOption(flag)) {
                if (v.equals("true")) {
                    flags.add(flag);
                }
            } else {
                flags.add(flag);
                flags.add(v);
            }
        }
        return flags;
    }

    private static String flag(String name) {
        return "--" + name.replace('_', '-');
    }

    private static String knownName(String where, String section, String name) {
        if (name.equals("preset")) {
            throw new TrilensException(where + ": preset under " + section + ": expected it at the top level "
                    + "(preset: quick)");
        }
        if (!NAMES.contains(name)) {
            throw new TrilensException(where + ": unknown " + (section.equals("axes") ? "axis" : "train flag") + " '"
                    + FileText.show(name) + "' under " + section + ", expected one of " + String.join(", ", NAMES));
        }
        return name;
    }

    /** A value as train's flag reads it; booleans only for boolean flags, no lists or mappings. */
    private static String value(String where, String what, String flag, JsonNode v) {
        if (isBooleanOption(flag)) {
            if (!v.isBoolean()) {
                throw new TrilensException(where + ": " + what + " is " + describe(v) + "; expected true or false");
            }
            return v.asText();
        }
        if (v.isIntegralNumber()) {
            return v.bigIntegerValue().toString();
        }
        if (v.isNumber()) {
            if (!Double.isFinite(v.doubleValue())) {
                throw new TrilensException(where + ": " + what + " is " + v.asText() + "; expected a finite number");
            }
            // 0.05, not 5.0E-2: the value goes into run ids and tables
            return new BigDecimal(v.asText()).stripTrailingZeros().toPlainString();
        }
        if (v.isTextual() && !v.asText().isBlank()) {
            return v.asText().strip();
        }
        throw new TrilensException(where + ": " + what + " is " + describe(v) + "; expected a "
                + typeName(optionType(flag)));
    }

    /** Runs train's own parsing and checks; its message, prefixed with where the value came from, on failure. */
    private static TrainConfig check(String where, String what, List<String> flags) {
        try {
            return TrainCommand.configOf(flags);
        } catch (CommandLine.ParameterException | TrilensException e) {
            throw new TrilensException(where + ": " + what + ": " + e.getMessage(), e);
        }
    }

    /** A value as its flag's type (Integer, Long, Double, Boolean), for typed tables. */
    public static Object typed(String name, String value) {
        Class<?> t = optionType(flag(name));
        if (t == boolean.class || t == Boolean.class) {
            return Boolean.parseBoolean(value);
        }
        if (t == Integer.class || t == int.class) {
            return Integer.parseInt(value);
        }
        if (t == Long.class || t == long.class) {
            return Long.parseLong(value);
        }
        return t == Double.class || t == double.class ? Double.parseDouble(value) : value;
    }

    private static final Map<String, Class<?>> TYPES = optionTypes();

    private static Map<String, Class<?>> optionTypes() {
        Map<String, Class<?>> m = new HashMap<>();
        CommandLine.Model.CommandSpec spec = new CommandLine(new TrainCommand()).getCommandSpec();
        for (String f : TrainCommand.CONFIG_FLAGS) {
            m.put(f, spec.findOption(f).type());
        }
        return m;
    }

    private static Class<?> optionType(String flag) {
        return TYPES.get(flag);
    }

    private static boolean isBooleanOption(String flag) {
        Class<?> t = optionType(flag);
        return t == boolean.class || t == Boolean.class;
    }

    private static String typeName(Class<?> t) {
        if (t == Integer.class || t == int.class || t == Long.class || t == long.class) {
            return "whole number";
        }
        return t == Double.class || t == double.class ? "number" : "value";
    }

    private static String kind(JsonNode n) {
        if (n.isArray()) {
            return "list";
        }
        if (n.isObject()) {
            return "mapping";
        }
        return n.isNull() ? "null" : n.isBoolean() ? "boolean" : n.isNumber() ? "number" : "string";
    }

    private static String describe(JsonNode v) {
        return v.isValueNode() && !v.isNull() ? kind(v) + " " + FileText.show(v.asText()) : "a " + kind(v);
    }

    /** Names the values every run shares: the preset and the fixed flags, for captions. */
    public String fixedText() {
        List<String> parts = new ArrayList<>(List.of("preset " + preset));
        fixed.forEach((k, v) -> parts.add(k + " " + v));
        return String.join(", ", parts);
    }

    /** The set of axis names. */
    public Set<String> axisNames() {
        Set<String> s = new LinkedHashSet<>();
        axes.forEach(a -> s.add(a.name()));
        return s;
    }
}
