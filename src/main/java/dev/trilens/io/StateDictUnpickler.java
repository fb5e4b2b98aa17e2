package dev.trilens.io;

import dev.trilens.TrilensException;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import net.razorvine.pickle.IObjectConstructor;
import net.razorvine.pickle.Opcodes;
import net.razorvine.pickle.PickleException;
import net.razorvine.pickle.PickleUtils;
import net.razorvine.pickle.UnpickleStack;
import net.razorvine.pickle.Unpickler;

/**
 * Razorvine's Unpickler limited to what torch.save puts in a state dict's data.pkl. Every opcode that names a global
 * (GLOBAL, STACK_GLOBAL, INST) is handled here against an allow-list, so razorvine's own registry, which turns any
 * unknown name into a generic object, is never consulted, and the only callables that can reach REDUCE, NEWOBJ or
 * OBJ are the {@link Global}s below. Nothing in a pickle is ever executed: storages become references that the
 * caller reads from the zip afterwards.
 */
final class StateDictUnpickler extends Unpickler {

    /** A storage named by a persistent id: dtype from its torch.*Storage class, key = its data/&lt;key&gt; entry. */
    record StorageRef(String dtype, String key, long numel) {
    }

    /** A tensor view of a storage, as _rebuild_tensor_v2 describes it; its values are read later. */
    record TensorRef(StorageRef storage, long offset, long[] size, long[] stride) {
    }

    /** An allowed global: a function or class that REDUCE may call, or a storage type that only names a dtype. */
    private record Global(String name, String dtype, IObjectConstructor body) implements IObjectConstructor {
        @Override
        public Object construct(Object[] args) {
            if (body == null) {
                throw new PickleException(name + " is not callable here");
            }
            return body.construct(args);
        }
    }

    private static final Map<String, Global> ALLOWED = new LinkedHashMap<>();

    static {
        ALLOWED.put("collections.OrderedDict", new Global("collections.OrderedDict", null, null));
        allow("torch._utils._rebuild_tensor_v2", StateDictUnpickler::rebuildTensor);
        allow("torch._utils._rebuild_parameter", StateDictUnpickler::rebuildParameter);
        allow("torch._utils._rebuild_parameter_with_state", StateDictUnpickler::rebuildParameter);
        allow("torch.Size", args -> args.length == 1 ? args[0] : new Object[0]);
        String[][] storages = {
            {"FloatStorage", "float32"}, {"DoubleStorage", "float64"}, {"HalfStorage", "float16"},
            {"BFloat16Storage", "bfloat16"}, {"LongStorage", "int64"}, {"IntStorage", "int32"},
            {"ShortStorage", "int16"}, {"ByteStorage", "uint8"}, {"CharStorage", "int8"}, {"BoolStorage", "bool"},
        };
        for (String[] s : storages) {
            ALLOWED.put("torch." + s[0], new Global("torch." + s[0], s[1], null));
        }
    }

    private static void allow(String name, IObjectConstructor body) {
        ALLOWED.put(name, new Global(name, null, body));
    }

    /**
     * Work bounds. Each opcode builds at most one object, so time and memory grow with the number of objects built;
     * torch.save's pickles spend about 5 bytes on each (2,759 bytes and 566 stack entries for the challenge model)
     * and memoize one object in 12 bytes. Half an object per byte, a memo entry per 4 bytes and 32 levels of nesting
     * (a state dict needs 4) leave valid files a wide margin; the absolute caps keep a large hostile data.pkl within
     * a hundred MB of heap (30,000 tensors' worth: a TransformerLens state dict has about 20 per layer).
     */
    static final int MAX_OBJECTS = 1_000_000;
    static final int MAX_MEMO = 500_000;
    static final int MAX_DEPTH = 32;
    private static final int SLACK = 4096;

    private final String file;
    private int maxObjects = MAX_OBJECTS;
    private int maxMemo = MAX_MEMO;
    /** Depth of each container deeper than 1; a container not in it has depth 1, anything else 0. */
    private final Map<Object, Integer> depth = new IdentityHashMap<>();
    /**
     * Lists and dicts already placed inside another container. They may not change any more, so a container's depth
     * is final once it is nested, and no cycle can form except a container put into itself, which is refused.
     */
    private final Set<Object> nested = Collections.newSetFromMap(new IdentityHashMap<>());

    StateDictUnpickler(String file) {
        this.file = file;
    }

    @Override
    public Object loads(byte[] pickle) throws PickleException, IOException {
        maxObjects = (int) Math.min(MAX_OBJECTS, pickle.length / 2L + SLACK);
        maxMemo = (int) Math.min(MAX_MEMO, pickle.length / 4L + SLACK);
        return super.loads(pickle);
    }

    @Override
    public Object load(InputStream in) throws PickleException, IOException {
        stack = new BoundedStack();
        input = in;
        while (true) {
            short key = PickleUtils.readbyte(input);
            if (key == -1) {
                throw new IOException("premature end of file");
            }
            Object value = dispatch(key);
            if (value != NO_RETURN_VALUE) {
                return value;
            }
        }
    }

    /** The unpickler's stack, counting every object pushed onto it. */
    private final class BoundedStack extends UnpickleStack {
        private int pushed;

        @Override
        public void add(Object o) {
            count();
            super.add(o);
        }

        @Override
        public void add_mark() {
            count();
            super.add_mark();
        }

        private void count() {
            if (++pushed > maxObjects) {
                throw new PickleException("it builds more than " + maxObjects + " objects, far more than a state "
                        + "dict of its size needs");
            }
        }

        boolean isMark(Object o) {
            return o == MARKER;
        }
    }

    @Override
    protected Object dispatch(short key) throws PickleException, IOException {
        switch (key) {
            case Opcodes.GLOBAL -> {
                String module = PickleUtils.readline(input);
                String name = PickleUtils.readline(input);
                stack.add(resolve(module, name));
            }
            case Opcodes.STACK_GLOBAL -> {
                Object name = pop();
                Object module = pop();
                if (!(module instanceof String m) || !(name instanceof String n)) {
                    throw new PickleException("STACK_GLOBAL names a global by a " + pyType(module) + " and a "
                            + pyType(name) + ", expected two strings");
                }
                stack.add(resolve(m, n));
            }
            case Opcodes.INST -> {
                Global g = resolve(PickleUtils.readline(input), PickleUtils.readline(input));
                stack.add(call(g, popToMark().toArray()));
            }
            case Opcodes.REDUCE, Opcodes.NEWOBJ -> {
                Object args = pop();
                stack.add(call(pop(), args));
            }
            case Opcodes.NEWOBJ_EX -> {
                Object kwargs = pop();
                Object args = pop();
                if (!(kwargs instanceof Map<?, ?> kw) || !kw.isEmpty()) {
                    throw new PickleException("NEWOBJ_EX passes keyword arguments, which no state dict type takes");
                }
                stack.add(call(pop(), args));
            }
            case Opcodes.OBJ -> {
                List<Object> items = popToMark();
                if (items.isEmpty()) {
                    throw new PickleException("OBJ without a class");
                }
                stack.add(call(items.get(0), items.subList(1, items.size()).toArray()));
            }
            case Opcodes.BINPERSID -> stack.add(persistentLoad(pop()));
            case Opcodes.EMPTY_TUPLE -> stack.add(new Object[0]);
            case Opcodes.TUPLE -> stack.add(tuple(popToMark().toArray()));
            case Opcodes.TUPLE1 -> stack.add(tuple(new Object[] {pop()}));
            case Opcodes.TUPLE2 -> {
                Object b = pop();
                stack.add(tuple(new Object[] {pop(), b}));
            }
            case Opcodes.TUPLE3 -> {
                Object c = pop();
                Object b = pop();
                stack.add(tuple(new Object[] {pop(), b, c}));
            }
            case Opcodes.EMPTY_LIST -> stack.add(new ArrayList<>());
            case Opcodes.LIST -> {
                List<Object> list = new ArrayList<>();
                for (Object item : popToMark()) {
                    nest(list, item);
                    list.add(item);
                }
                stack.add(list);
            }
            case Opcodes.APPEND -> {
                Object item = pop();
                List<Object> list = listOnTop();
                nest(list, item);
                list.add(item);
            }
            case Opcodes.APPENDS -> {
                // razorvine trims the list after each APPENDS, which makes many small ones quadratic
                List<Object> items = popToMark();
                List<Object> list = listOnTop();
                for (Object item : items) {
                    nest(list, item);
                    list.add(item);
                }
            }
            case Opcodes.EMPTY_DICT -> stack.add(new LinkedHashMap<String, Object>());
            case Opcodes.DICT -> {
                List<Object> items = popToMark();
                Map<String, Object> dict = new LinkedHashMap<>();
                putAll(dict, items);
                stack.add(dict);
            }
            case Opcodes.SETITEM -> {
                Object value = pop();
                Object k = pop();
                put(dictOnTop(), k, value);
            }
            case Opcodes.SETITEMS -> {
                // razorvine collects these in a HashMap first, which would lose the OrderedDict's order
                List<Object> items = popToMark();
                putAll(dictOnTop(), items);
            }
            case Opcodes.EMPTY_SET, Opcodes.ADDITEMS, Opcodes.FROZENSET ->
                    throw new PickleException("it builds a set, which a state dict never holds");
            case Opcodes.BUILD -> {
                pop(); // object state (an OrderedDict's _metadata): not needed, never applied
                if (stack.size() == 0) {
                    throw new PickleException("BUILD without an object");
                }
            }
            case Opcodes.POP_MARK -> popToMark(); // razorvine's trims the whole stack each time
            case Opcodes.LONG -> {
                // BigInteger parses decimal text in quadratic time; no tensor size needs more than 19 digits
                String digits = PickleUtils.readline(input);
                if (digits.length() > 40) {
                    throw new PickleException("an integer of " + digits.length() + " characters, expected at "
                            + "most 40");
                }
                try {
                    stack.add(PickleUtils.optimizeBigint(new BigInteger(digits.endsWith("L")
                            ? digits.substring(0, digits.length() - 1) : digits)));
                } catch (NumberFormatException e) {
                    throw new PickleException("LONG is not a decimal integer");
                }
            }
            case Opcodes.BINUNICODE, Opcodes.BINSTRING, Opcodes.BINBYTES, Opcodes.LONG4 -> {
                checkLength(4);
                return super.dispatch(key);
            }
            case Opcodes.BINUNICODE8, Opcodes.BINBYTES8, Opcodes.BYTEARRAY8 -> {
                checkLength(8);
                return super.dispatch(key);
            }
            case Opcodes.PUT, Opcodes.BINPUT, Opcodes.LONG_BINPUT, Opcodes.MEMOIZE -> {
                if (stack.size() == 0) {
                    throw new PickleException("memoizes an empty stack");
                }
                super.dispatch(key);
                if (memo.size() > maxMemo) {
                    throw new PickleException("it memoizes more than " + maxMemo + " objects, far more than a "
                            + "state dict of its size needs");
                }
            }
            default -> {
                return super.dispatch(key);
            }
        }
        return NO_RETURN_VALUE;
    }

    private Object pop() {
        if (stack.size() == 0) {
            throw new PickleException("an opcode pops an empty stack");
        }
        Object o = stack.pop();
        if (((BoundedStack) stack).isMark(o)) {
            throw new PickleException("an opcode pops a MARK as a value");
        }
        return o;
    }

    private List<Object> popToMark() {
        List<Object> items = new ArrayList<>();
        BoundedStack s = (BoundedStack) stack;
        while (true) {
            if (s.size() == 0) {
                throw new PickleException("an opcode needs a MARK that is not on the stack");
            }
            Object o = s.pop();
            if (s.isMark(o)) {
                break;
            }
            items.add(o);
        }
        Collections.reverse(items);
        return items;
    }

    private Object call(Object callable, Object args) {
        if (!(callable instanceof Global g)) {
            throw new PickleException("it calls a " + pyType(callable) + ", expected one of torch's rebuild functions");
        }
        if (!(args instanceof Object[] a)) {
            throw new PickleException(g.name() + " is called with a " + pyType(args) + ", expected a tuple");
        }
        return g.name().equals("collections.OrderedDict") ? orderedDict(a) : g.construct(a);
    }

    private Object[] tuple(Object[] items) {
        for (Object item : items) {
            nest(items, item);
        }
        return items;
    }

    @SuppressWarnings("unchecked")
    private List<Object> listOnTop() {
        Object top = stack.size() == 0 ? null : stack.peek();
        if (!(top instanceof List<?>)) {
            throw new PickleException("APPEND to a " + pyType(top) + ", expected a list");
        }
        mutable(top);
        return (List<Object>) top;
    }

    @SuppressWarnings("unchecked")
    private Map<String, Object> dictOnTop() {
        Object top = stack.size() == 0 ? null : stack.peek();
        if (!(top instanceof Map<?, ?>)) {
            throw new PickleException("SETITEM on a " + pyType(top) + ", expected a dict");
        }
        mutable(top);
        return (Map<String, Object>) top;
    }

    private void putAll(Map<String, Object> dict, List<Object> items) {
        if (items.size() % 2 != 0) {
            throw new PickleException("a dict is given an odd number of keys and values");
        }
        for (int i = 0; i < items.size(); i += 2) {
            put(dict, items.get(i), items.get(i + 1));
        }
    }

    /** A state dict's keys are tensor names: anything else is refused before it is hashed. */
    private void put(Map<String, Object> dict, Object key, Object value) {
        if (!(key instanceof String k)) {
            throw new PickleException("a dict key is a " + pyType(key) + ", expected a string (a state dict's keys "
                    + "are tensor names)");
        }
        nest(dict, value);
        dict.put(k, value);
    }

    private void mutable(Object container) {
        if (nested.contains(container)) {
            throw new PickleException("it changes a list or dict after placing it inside another, which torch.save "
                    + "never does");
        }
    }

    /** Records that item goes into container, refusing cycles and nesting deeper than {@link #MAX_DEPTH}. */
    private void nest(Object container, Object item) {
        if (item == container) {
            throw new PickleException("it puts a " + pyType(item) + " inside itself");
        }
        if (item instanceof List<?> || item instanceof Map<?, ?>) {
            nested.add(item);
        }
        int d = depthOf(item) + 1;
        if (d > MAX_DEPTH) {
            throw new PickleException("it nests containers more than " + MAX_DEPTH + " deep, expected a flat "
                    + "state dict");
        }
        if (d > depthOf(container)) {
            depth.put(container, d);
        }
    }

    private int depthOf(Object o) {
        Integer d = depth.get(o);
        if (d != null) {
            return d;
        }
        return o instanceof Object[] || o instanceof List<?> || o instanceof Map<?, ?> ? 1 : 0;
    }

    /** Python's name for what the pickle built, for messages (never its contents, which may be huge or cyclic). */
    static String pyType(Object o) {
        if (o == null) {
            return "None";
        } else if (o instanceof String) {
            return "str";
        } else if (o instanceof Object[]) {
            return "tuple";
        } else if (o instanceof List<?>) {
            return "list";
        } else if (o instanceof Map<?, ?>) {
            return "dict";
        } else if (o instanceof Set<?>) {
            return "set";
        } else if (o instanceof Boolean) {
            return "bool";
        } else if (o instanceof Number n) {
            return n instanceof Double || n instanceof Float ? "float" : "int";
        } else if (o instanceof byte[]) {
            return "bytes";
        } else if (o instanceof Global g) {
            return g.name();
        } else if (o instanceof TensorRef) {
            return "tensor";
        } else if (o instanceof StorageRef) {
            return "storage";
        }
        return o.getClass().getSimpleName();
    }

    /**
     * Razorvine allocates a length-prefixed value before reading it, so a forged length must not cost gigabytes.
     * The input is the in-memory data.pkl (see {@link #loads}), so available() is exactly what is left.
     */
    private void checkLength(int width) throws IOException {
        input.mark(width);
        byte[] b = input.readNBytes(width);
        input.reset();
        long len = 0;
        for (int i = b.length - 1; i >= 0; i--) {
            len = (len << 8) | (b[i] & 0xff);
        }
        if (b.length < width || len < 0 || len > input.available() - width) {
            throw new PickleException("a value's length runs past the end of data.pkl");
        }
    }

    private Global resolve(String module, String name) {
        Global g = ALLOWED.get(module + "." + name);
        if (g == null) {
            throw new TrilensException("refusing to load " + file + ": pickle references global '"
                    + FileText.show(module + "." + name) + "', which is not a tensor state dict type");
        }
        return g;
    }

    @Override
    protected Object persistentLoad(Object pid) {
        if (!(pid instanceof Object[] t) || t.length != 5 || !"storage".equals(t[0])
                || !(t[1] instanceof Global g) || g.dtype() == null || !(t[2] instanceof String key)) {
            throw new PickleException("persistent id is not ('storage', torch.<T>Storage, key, location, numel)");
        }
        return new StorageRef(g.dtype(), key, toLong(t[4], "storage numel"));
    }

    private Object orderedDict(Object[] args) {
        Map<String, Object> map = new LinkedHashMap<>();
        if (args.length == 1 && args[0] instanceof List<?> pairs) {
            for (Object pair : pairs) {
                if (!(pair instanceof Object[] kv) || kv.length != 2) {
                    throw new PickleException("OrderedDict is given a " + pyType(pair) + ", expected (key, value)");
                }
                put(map, kv[0], kv[1]);
            }
        } else if (args.length != 0) {
            throw new PickleException("OrderedDict called with unexpected arguments");
        }
        return map;
    }

    private static Object rebuildTensor(Object[] args) {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.length < 4 || !(args[0] instanceof StorageRef storage)) {
            throw new PickleException("_rebuild_tensor_v2 called without (storage, offset, size, stride, ...)");
        }
        return new TensorRef(storage, toLong(args[1], "storage offset"), longs(args[2], "size"),
                longs(args[3], "stride"));
    }

    private static Object rebuildParameter(Object[] args) {
        if (args.length < 1 || !(args[0] instanceof TensorRef)) {
            throw new PickleException("_rebuild_parameter called without a tensor");
        }
        return args[0];
    }

    private static long[] longs(Object tuple, String what) {
        if (!(tuple instanceof Object[] t)) {
            throw new PickleException("tensor " + what + " is a " + pyType(tuple) + ", expected a tuple of integers");
        }
        long[] out = new long[t.length];
        for (int i = 0; i < t.length; i++) {
            out[i] = toLong(t[i], what);
        }
        return out;
    }

    private static long toLong(Object o, String what) {
        if (o instanceof Integer || o instanceof Long || o instanceof Short || o instanceof Byte) {
            return ((Number) o).longValue();
        }
        if (o instanceof BigInteger b && b.bitLength() < 64) {
            return b.longValue();
        }
        throw new PickleException(what + (o instanceof BigInteger ? " needs more than 64 bits"
                : " is a " + pyType(o)) + ", expected an integer");
    }
}
