/* Model-call log records read from OTLP request bytes into rollup rows, in C.
 *
 * The same reading as the Python reader in call_rows.py (which stays the
 * reference and the fallback), without a Python object per attribute: the
 * collector spent ~75 % of its CPU building and hashing the bytes of every
 * KeyValue there. The schema (attribute key -> column and kind, the defaults,
 * the event name) comes from Python through configure(), so it has one source.
 *
 * read(body) -> (rows, others) | None
 *   rows:   one tuple per nexus.model_call record, in prepare_rows' column order
 *   others: (resource, scope, record) positions of records left to the
 *           reference reading (another event, an unusual layout or value)
 *   None:   the body has a layout this reader does not follow (a known field
 *           with another wire type, a group, a truncated field): the caller
 *           reads it in Python, which decides as protobuf does.
 *
 * Every read is checked against the end of its enclosing message; the input
 * is untrusted network data that protobuf has parsed once already.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { KIND_STR = 0, KIND_INT = 1, KIND_FLOAT = 2, KIND_BOOL = 3 };
enum { READ_OK = 0, READ_IGNORED = 1, READ_SKIP = 2 };

#define SLOTS 256 /* power of two, well above the ~30 keys */
#define MAX_LABELS 8

typedef struct {
    const char *key; /* into a bytes object held in plan_keys */
    Py_ssize_t length;
    int column;
    int kind;
} Slot;

static Slot slots[SLOTS];
static PyObject *plan_keys;    /* list of the key bytes, kept alive */
static PyObject *defaults;     /* tuple: the value of each column when absent */
static PyObject *event_name;   /* bytes */
static Py_ssize_t width, ts_column, request_id_column;
static Py_ssize_t label_columns[MAX_LABELS];
static Py_ssize_t label_count;

static uint32_t hash_key(const uint8_t *key, Py_ssize_t length) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < length; i++) {
        h = (h ^ key[i]) * 16777619u;
    }
    return h;
}

static const Slot *find_slot(const uint8_t *key, Py_ssize_t length) {
    uint32_t i = hash_key(key, length) & (SLOTS - 1);
    while (slots[i].key != NULL) {
        if (slots[i].length == length && memcmp(slots[i].key, key, (size_t)length) == 0) {
            return &slots[i];
        }
        i = (i + 1) & (SLOTS - 1);
    }
    return NULL;
}

/* A varint below 2**64 of at most 10 bytes; 0 if truncated or longer. */
static int read_varint(const uint8_t **at, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *at;
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) {
            return 0;
        }
        uint8_t byte = *p++;
        if (shift == 63 && byte > 1) {
            return 0;
        }
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            *at = p;
            *out = value;
            return 1;
        }
    }
    return 0;
}

/* The next field's number, wire type and, for length-delimited fields, its span. */
typedef struct {
    uint64_t number;
    int wire;
    const uint8_t *start; /* of the value */
    const uint8_t *stop;  /* after the value */
} Field;

static int next_field(const uint8_t **at, const uint8_t *end, Field *field) {
    uint64_t tag, length;
    const uint8_t *p = *at;
    if (!read_varint(&p, end, &tag)) {
        return 0;
    }
    field->number = tag >> 3;
    field->wire = (int)(tag & 7);
    if (field->number == 0) {
        return 0;
    }
    field->start = p;
    switch (field->wire) {
    case 0:
        if (!read_varint(&p, end, &length)) {
            return 0;
        }
        break;
    case 1:
        if (end - p < 8) {
            return 0;
        }
        p += 8;
        break;
    case 2:
        if (!read_varint(&p, end, &length) || length > (uint64_t)(end - p)) {
            return 0;
        }
        field->start = p;
        p += length;
        break;
    case 5:
        if (end - p < 4) {
            return 0;
        }
        p += 4;
        break;
    default: /* groups: not in OTLP */
        return 0;
    }
    field->stop = p;
    *at = p;
    return 1;
}

static uint64_t fixed64(const uint8_t *p) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) {
        value = (value << 8) | p[i];
    }
    return value;
}

/* One KeyValue's bytes -> its column and a new reference to its value (call_rows._parse). */
static int read_attribute(const uint8_t *kv, const uint8_t *end, Py_ssize_t *column, PyObject **value) {
    uint64_t length, number;
    const uint8_t *p = kv;
    if (p >= end || *p != 0x0A) { /* key = 1 first */
        return READ_SKIP;
    }
    p++;
    if (!read_varint(&p, end, &length) || length >= (uint64_t)(end - p)) {
        return READ_SKIP; /* the value must follow the key */
    }
    const Slot *slot = find_slot(p, (Py_ssize_t)length);
    p += length;
    if (*p != 0x12) { /* then value = 2, once */
        return READ_SKIP;
    }
    p++;
    if (!read_varint(&p, end, &length) || length == 0 || length != (uint64_t)(end - p)) {
        return READ_SKIP;
    }
    if (slot == NULL) {
        return READ_IGNORED; /* event.name and keys of newer senders */
    }
    uint8_t tag = *p++;
    switch (slot->kind) {
    case KIND_STR:
        if (tag != 0x0A || !read_varint(&p, end, &length) || length != (uint64_t)(end - p)) {
            return READ_SKIP;
        }
        *value = PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)length, "strict");
        if (*value == NULL) {
            PyErr_Clear(); /* not UTF-8: the reference reading says what is wrong */
            return READ_SKIP;
        }
        break;
    case KIND_FLOAT:
        if (tag == 0x21 && end - p == 8) { /* double_value = 4 */
            double number_value;
            uint64_t bits = fixed64(p);
            memcpy(&number_value, &bits, sizeof number_value);
            *value = PyFloat_FromDouble(number_value);
        } else if (tag == 0x18 && read_varint(&p, end, &number) && p == end) {
            /* int_value = 3: an integer where a float is expected is taken as one */
            *value = PyFloat_FromDouble((double)(int64_t)number);
        } else {
            return READ_SKIP;
        }
        break;
    case KIND_INT:
        if (tag != 0x18 || !read_varint(&p, end, &number) || p != end || number >= (UINT64_C(1) << 63)) {
            return READ_SKIP; /* negative: the reference refuses it */
        }
        *value = PyLong_FromUnsignedLongLong(number);
        break;
    default: /* KIND_BOOL: bool_value = 2, as 0 or 1 */
        if (tag != 0x10 || end - p != 1 || *p > 1) {
            return READ_SKIP;
        }
        *value = PyBool_FromLong(*p);
        break;
    }
    if (*value == NULL) {
        return -1;
    }
    *column = slot->column;
    return READ_OK;
}

/* The row of one model-call record into rows, or its position into others. -1: a Python error. */
static int read_record(const uint8_t *start, const uint8_t *end, uint64_t nanos, PyObject *rows,
                       PyObject *others, Py_ssize_t r, Py_ssize_t s, Py_ssize_t k) {
    PyObject *values[64] = {NULL};
    PyObject *row = NULL;
    const uint8_t *p = start;
    Field field;
    int status = -1, skip = 0;
    while (p < end) {
        if (!next_field(&p, end, &field)) {
            skip = 1; /* cannot happen: the caller's first pass read every field */
            break;
        }
        if (field.number != 6) {
            continue;
        }
        Py_ssize_t column;
        PyObject *value = NULL;
        int read = read_attribute(field.start, field.stop, &column, &value);
        if (read < 0) {
            goto done;
        }
        if (read == READ_SKIP) {
            skip = 1;
            break;
        }
        if (read == READ_OK) {
            Py_XSETREF(values[column], value); /* a repeated key: the last one counts */
        }
    }
    if (!skip && values[ts_column] == NULL) {
        if (nanos == 0) {
            skip = 1;
        } else if ((values[ts_column] = PyFloat_FromDouble((double)nanos / 1e9)) == NULL) {
            goto done;
        }
    }
    for (Py_ssize_t i = 0; !skip && i < width; i++) {
        if (values[i] == NULL) {
            values[i] = Py_NewRef(PyTuple_GET_ITEM(defaults, i));
        }
    }
    /* prepare_rows keys a call without request id by a digest, and refuses empty labels */
    if (!skip) {
        int truthy = PyObject_IsTrue(values[request_id_column]);
        for (Py_ssize_t i = 0; truthy > 0 && i < label_count; i++) {
            truthy = PyObject_IsTrue(values[label_columns[i]]);
        }
        if (truthy < 0) {
            goto done;
        }
        skip = !truthy;
    }
    if (skip) {
        PyObject *position = Py_BuildValue("(nnn)", r, s, k);
        if (position == NULL || PyList_Append(others, position) < 0) {
            Py_XDECREF(position);
            goto done;
        }
        Py_DECREF(position);
        status = 0;
        goto done;
    }
    if ((row = PyTuple_New(width)) == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < width; i++) {
        PyTuple_SET_ITEM(row, i, values[i]); /* the tuple takes the reference */
        values[i] = NULL;
    }
    status = PyList_Append(rows, row);
    Py_DECREF(row);
done:
    for (Py_ssize_t i = 0; i < width; i++) {
        Py_XDECREF(values[i]);
    }
    return status;
}

/* 1: read; 0: a layout left to Python; -1: a Python error. */
static int read_scope(const uint8_t *p, const uint8_t *end, PyObject *rows, PyObject *others, Py_ssize_t r,
                      Py_ssize_t s) {
    Field field, inner;
    Py_ssize_t k = 0;
    const char *name = PyBytes_AS_STRING(event_name);
    Py_ssize_t name_length = PyBytes_GET_SIZE(event_name);
    while (p < end) {
        if (!next_field(&p, end, &field)) {
            return 0;
        }
        if (field.number != 2) {
            continue;
        }
        if (field.wire != 2) {
            return 0;
        }
        /* first pass: the record's event name and times (the name comes after the attributes) */
        const uint8_t *q = field.start, *name_at = NULL;
        Py_ssize_t found_length = 0;
        uint64_t time = 0, observed = 0;
        while (q < field.stop) {
            if (!next_field(&q, field.stop, &inner)) {
                return 0;
            }
            if (inner.number == 1 || inner.number == 11) {
                if (inner.wire != 1) {
                    return 0;
                }
                *(inner.number == 1 ? &time : &observed) = fixed64(inner.start);
            } else if (inner.number == 12 || inner.number == 6) {
                if (inner.wire != 2) {
                    return 0;
                }
                if (inner.number == 12) {
                    name_at = inner.start;
                    found_length = inner.stop - inner.start;
                }
            }
        }
        int status;
        if (name_at != NULL && found_length == name_length && memcmp(name_at, name, (size_t)name_length) == 0) {
            status = read_record(field.start, field.stop, time ? time : observed, rows, others, r, s, k);
        } else {
            PyObject *position = Py_BuildValue("(nnn)", r, s, k);
            status = position == NULL ? -1 : PyList_Append(others, position);
            Py_XDECREF(position);
        }
        if (status < 0) {
            return -1;
        }
        k++;
    }
    return 1;
}

static PyObject *read_body(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (defaults == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *rows = PyList_New(0), *others = PyList_New(0), *result = NULL;
    int status = rows != NULL && others != NULL ? 1 : -1;
    const uint8_t *p = view.buf, *end = p + view.len;
    Field resource, scope;
    Py_ssize_t r = 0;
    while (status == 1 && p < end) {
        if (!next_field(&p, end, &resource)) {
            status = 0;
        } else if (resource.number == 1) {
            if (resource.wire != 2) {
                status = 0;
                break;
            }
            const uint8_t *q = resource.start;
            Py_ssize_t s = 0;
            while (status == 1 && q < resource.stop) {
                if (!next_field(&q, resource.stop, &scope)) {
                    status = 0;
                } else if (scope.number == 2) {
                    status = scope.wire != 2 ? 0 : read_scope(scope.start, scope.stop, rows, others, r, s++);
                }
            }
            r++;
        }
    }
    if (status == 1) {
        result = PyTuple_Pack(2, rows, others);
    } else if (status == 0) {
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(rows);
    Py_XDECREF(others);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *names[] = {"plan", "defaults", "timestamp", "request_id", "labels", "event_name", NULL};
    PyObject *plan, *new_defaults, *labels, *name;
    Py_ssize_t timestamp, request_id;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O!nnO!O!", names, &PyDict_Type, &plan, &PyTuple_Type,
                                     &new_defaults, &timestamp, &request_id, &PyTuple_Type, &labels,
                                     &PyBytes_Type, &name)) {
        return NULL;
    }
    Py_ssize_t columns = PyTuple_GET_SIZE(new_defaults);
    if (columns > 64 || PyTuple_GET_SIZE(labels) > MAX_LABELS || timestamp < 0 || timestamp >= columns ||
        request_id < 0 || request_id >= columns || PyDict_GET_SIZE(plan) > SLOTS / 2) {
        PyErr_SetString(PyExc_ValueError, "a plan this reader cannot hold");
        return NULL;
    }
    PyObject *keys = PyList_New(0);
    if (keys == NULL) {
        return NULL;
    }
    Slot new_slots[SLOTS];
    memset(new_slots, 0, sizeof new_slots);
    PyObject *key, *slot;
    Py_ssize_t position = 0;
    while (PyDict_Next(plan, &position, &key, &slot)) {
        Py_ssize_t column;
        int kind;
        if (!PyBytes_Check(key) || !PyArg_ParseTuple(slot, "ni", &column, &kind) || column < 0 ||
            column >= columns || kind < KIND_STR || kind > KIND_BOOL || PyList_Append(keys, key) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "plan entries are bytes -> (column, kind)");
            }
            Py_DECREF(keys);
            return NULL;
        }
        const uint8_t *bytes = (const uint8_t *)PyBytes_AS_STRING(key);
        uint32_t i = hash_key(bytes, PyBytes_GET_SIZE(key)) & (SLOTS - 1);
        while (new_slots[i].key != NULL) {
            i = (i + 1) & (SLOTS - 1);
        }
        new_slots[i] = (Slot){PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), (int)column, kind};
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(labels); i++) {
        Py_ssize_t column = PyLong_AsSsize_t(PyTuple_GET_ITEM(labels, i));
        if (column < 0 || column >= columns) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "a label column outside the row");
            }
            Py_DECREF(keys);
            return NULL;
        }
        label_columns[i] = column;
    }
    memcpy(slots, new_slots, sizeof slots);
    Py_XSETREF(plan_keys, keys);
    Py_XSETREF(defaults, Py_NewRef(new_defaults));
    Py_XSETREF(event_name, Py_NewRef(name));
    label_count = PyTuple_GET_SIZE(labels);
    width = columns;
    ts_column = timestamp;
    request_id_column = request_id;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"read", read_body, METH_O, "read(body) -> (rows, others) | None: the body's model-call rows."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(*, plan, defaults, timestamp, request_id, labels, event_name): the schema to read."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_call_rows_c", "Model-call log records read from OTLP bytes into rows.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__call_rows_c(void) { return PyModule_Create(&module_def); }
