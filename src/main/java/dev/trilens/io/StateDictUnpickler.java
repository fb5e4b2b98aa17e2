package dev.trilens.io;

import dev.trilens.TrilensException;
import java.io.IOException;
import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.razorvine.pickle.IObjectConstructor;
import net.razorvine.pickle.Opcodes;
import net.razorvine.pickle.PickleException;
import net.razorvine.pickle.PickleUtils;
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
        allow("collections.OrderedDict", StateDictUnpickler::orderedDict);
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

    private final String file;

    StateDictUnpickler(String file) {
        this.file = file;
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
                Object name = stack.pop();
                Object module = stack.pop();
                stack.add(resolve(String.valueOf(module), String.valueOf(name)));
            }
            case Opcodes.INST -> {
                Global g = resolve(PickleUtils.readline(input), PickleUtils.readline(input));
                stack.add(g.construct(stack.pop_all_since_marker().toArray()));
            }
            case Opcodes.EMPTY_DICT -> stack.add(new LinkedHashMap<>());
            case Opcodes.BUILD -> stack.pop(); // object state (an OrderedDict's _metadata): not needed, never applied
            case Opcodes.SETITEMS -> {
                // razorvine collects these in a HashMap first, which would lose the OrderedDict's order
                List<Object> items = stack.pop_all_since_marker();
                @SuppressWarnings("unchecked")
                Map<Object, Object> dict = (Map<Object, Object>) stack.peek();
                for (int i = 0; i + 1 < items.size(); i += 2) {
                    dict.put(items.get(i), items.get(i + 1));
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
            default -> {
                return super.dispatch(key);
            }
        }
        return NO_RETURN_VALUE;
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
            // the name comes from the file: keep the message one short line whatever it holds
            String shown = (module + "." + name).replaceAll("\\p{Cntrl}", "?");
            shown = shown.length() > 100 ? shown.substring(0, 100) + "..." : shown;
            throw new TrilensException("refusing to load " + file + ": pickle references global '" + shown
                    + "', which is not a tensor state dict type");
        }
        return g;
    }

    @Override
    protected Object persistentLoad(Object pid) {
        if (!(pid instanceof Object[] t) || t.length != 5 || !"storage".equals(t[0])
                || !(t[1] instanceof Global g) || g.dtype() == null) {
            throw new PickleException("persistent id is not ('storage', torch.<T>Storage, key, location, numel)");
        }
        return new StorageRef(g.dtype(), String.valueOf(t[2]), toLong(t[4], "storage numel"));
    }

    private static Object orderedDict(Object[] args) {
        Map<Object, Object> map = new LinkedHashMap<>();
        if (args.length == 1 && args[0] instanceof List<?> pairs) {
            for (Object pair : pairs) {
                Object[] kv = (Object[]) pair;
                map.put(kv[0], kv[1]);
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
            throw new PickleException("tensor " + what + " is not a tuple of integers");
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
        throw new PickleException(what + " is not an integer: " + o);
    }
}
