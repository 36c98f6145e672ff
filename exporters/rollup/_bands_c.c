/* A transaction's new calls grouped into band stage rows, in C.
 *
 * The same grouping as band_grouping.group_band_rows (which stays the
 * reference and the fallback): one key tuple and eight additions per in-scope
 * call cost ~1.5 us of bytecode there, a fifth of the whole fold. Keys are the
 * same Python tuples in a Python dict, so groups are told apart exactly as
 * there; integer sums are int64 with overflow checks, float sums are added in
 * row order as Python adds them.
 *
 * group_bands(calls, *, hour, short, thresholds, out_of_range, last_ts) -> rows | None
 * rows: (bucket, team, feature, model, provider, routed, routed_from, band, calls,
 *     input, output, cache_read, cost, priced, baseline, min_confidence, 0, 0, 0.0)
 *     per key, in first-seen order (bands' stage layout).
 * None: a value this reader leaves to Python (not an exact int or float where
 * one is expected, a time out of range, a NaN, a sum past int64).
 */
#include "_fold_c.h"

#include <math.h>

#define CALL_WIDTH 28
#define MAX_THRESHOLDS 64

typedef struct {
    PyObject *key;
    PyObject *first_priced; /* borrowed from the row: a lone call's priced stays what it was */
    int64_t calls, input, output, cache_read, priced;
    double cost, baseline, min_confidence;
    int routed;
} Band;

typedef struct {
    int64_t hour, short_prompt;
    const double *thresholds;
    Py_ssize_t threshold_count;
    long long out_of_range;
    double last_ts;
} Params;

/* routed as 0 or 1, or -1 when out of scope (None, an int other than 0 and 1); 0 return: hand back. */
static int routed_of(PyObject *value, int *routed) {
    if (value == Py_None) {
        *routed = -1;
        return 1;
    }
    if (!PyLong_Check(value)) { /* a float 0.0 equals 0 in Python: leave such rows to it */
        return 0;
    }
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (number == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *routed = (!overflow && (number == 0 || number == 1)) ? (int)number : -1;
    return 1;
}

/* The key of an in-scope call; NULL with no error set: hand back. New reference. */
static PyObject *band_key(PyObject *const *v, int routed, double ts, double confidence, const Params *p,
                          PyObject *empty) {
    PyObject *bucket = PyLong_FromLongLong((long long)ts / p->hour * p->hour);
    PyObject *team = or_empty(v[3], empty);
    PyObject *from = NULL, *band = NULL, *flag = PyLong_FromLong(routed), *key = NULL;
    if (routed == 0) {
        int64_t input;
        if (!as_int64(v[12], &input)) {
            goto done;
        }
        from = Py_NewRef(empty);
        band = PyLong_FromLong(input <= p->short_prompt);
    } else {
        from = or_empty(v[26], empty);
        long long number = p->out_of_range;
        if (confidence >= 0.0 && confidence <= 1.0) {
            number = 0; /* bisect_right */
            while (number < p->threshold_count && p->thresholds[number] <= confidence) {
                number++;
            }
        }
        band = PyLong_FromLongLong(number);
    }
    if (bucket != NULL && team != NULL && from != NULL && band != NULL && flag != NULL) {
        key = PyTuple_Pack(8, bucket, team, v[5], v[7], v[9], flag, from, band);
    }
done:
    Py_XDECREF(bucket);
    Py_XDECREF(team);
    Py_XDECREF(from);
    Py_XDECREF(band);
    Py_XDECREF(flag);
    return key;
}

/* 1: grouped; 0: leave to Python; -1: a Python error. */
static int group_rows(PyObject *calls, const Params *p, PyObject *index, Array *bands) {
    PyObject *empty = PyUnicode_FromString("");
    if (empty == NULL) {
        return -1;
    }
    int status = -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(calls);
    PyObject **items = PySequence_Fast_ITEMS(calls);
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *row = items[n];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != CALL_WIDTH) {
            status = 0;
            goto done;
        }
        PyObject **v = &PyTuple_GET_ITEM(row, 0);
        /* ts _ _ team _ feature _ model _ provider _ _ in out cache_read _ _ cost base priced
           _ _ _ _ _ routed routed_from confidence */
        if (v[5] == Py_None) {
            continue; /* out of scope: no check reads it */
        }
        int routed;
        if (!routed_of(v[25], &routed)) {
            status = 0;
            goto done;
        }
        PyObject *confidence_object = v[27];
        if (routed < 0 || (routed == 1 && confidence_object == Py_None)) {
            continue;
        }
        PyObject *ts_object = v[0], *cost = v[17], *base = v[18];
        double confidence = 0.0;
        if (routed == 1) {
            if (!PyFloat_CheckExact(confidence_object)) {
                status = 0;
                goto done;
            }
            confidence = PyFloat_AS_DOUBLE(confidence_object);
        }
        int64_t tokens[3], priced;
        if (!PyFloat_CheckExact(ts_object) || (cost != Py_None && !PyFloat_CheckExact(cost)) ||
            (base != Py_None && !PyFloat_CheckExact(base)) || isnan(confidence) || !PyLong_Check(v[19])) {
            status = 0;
            goto done;
        }
        int overflow;
        priced = PyLong_AsLongLongAndOverflow(v[19], &overflow);
        if (overflow || (priced == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            status = 0;
            goto done;
        }
        for (int t = 0; t < 3; t++) {
            if (!as_int64(v[12 + t], &tokens[t])) {
                status = 0;
                goto done;
            }
        }
        double ts = PyFloat_AS_DOUBLE(ts_object);
        if (!(ts >= 0.0 && ts <= p->last_ts)) {
            status = 0;
            goto done;
        }
        PyObject *key = band_key(v, routed, ts, confidence, p, empty);
        if (key == NULL) {
            status = PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        int is_new;
        Py_ssize_t at = slot_of(index, bands, key, &is_new);
        if (at < 0) {
            Py_DECREF(key);
            goto done;
        }
        Band *b = (Band *)bands->items + at;
        double cost_value = cost == Py_None ? 0.0 : PyFloat_AS_DOUBLE(cost);
        double base_value = base == Py_None ? 0.0 : PyFloat_AS_DOUBLE(base);
        if (is_new) {
            b->key = key; /* the array owns it */
            b->first_priced = v[19];
            b->routed = routed;
            b->min_confidence = confidence;
            /* `cost or 0.0`: a first -0.0 becomes 0.0 */
            b->cost = cost_value == 0.0 ? 0.0 : cost_value;
            b->baseline = base_value == 0.0 ? 0.0 : base_value;
        } else {
            Py_DECREF(key);
            if (cost != Py_None) {
                b->cost += cost_value;
            }
            if (base != Py_None) {
                b->baseline += base_value;
            }
            if (routed == 1 && confidence < b->min_confidence) {
                b->min_confidence = confidence;
            }
        }
        b->calls += 1;
        if (!add(&b->input, tokens[0]) || !add(&b->output, tokens[1]) || !add(&b->cache_read, tokens[2]) ||
            !add(&b->priced, priced)) {
            status = 0;
            goto done;
        }
    }
    status = 1;
done:
    Py_DECREF(empty);
    return status;
}

/* The stage row of a group; None when a sum or a key is NaN (Python hands those to SQL). */
static PyObject *band_row(const Band *b) {
    if (isnan(b->cost) || isnan(b->baseline)) {
        return Py_NewRef(Py_None);
    }
    if (key_has_nan(b->key, 8)) {
        return Py_NewRef(Py_None);
    }
    PyObject *priced = b->calls == 1 ? Py_NewRef(b->first_priced) : PyLong_FromLongLong(b->priced);
    PyObject *confidence = b->routed ? PyFloat_FromDouble(b->min_confidence) : Py_NewRef(Py_None);
    PyObject *row = NULL;
    if (priced != NULL && confidence != NULL) {
        PyObject *k = b->key;
        row = Py_BuildValue("(OOOOOOOOLLLLdOdOiid)", PyTuple_GET_ITEM(k, 0), PyTuple_GET_ITEM(k, 1),
                            PyTuple_GET_ITEM(k, 2), PyTuple_GET_ITEM(k, 3), PyTuple_GET_ITEM(k, 4),
                            PyTuple_GET_ITEM(k, 5), PyTuple_GET_ITEM(k, 6), PyTuple_GET_ITEM(k, 7),
                            (long long)b->calls, (long long)b->input, (long long)b->output,
                            (long long)b->cache_read, b->cost, priced, b->baseline, confidence, 0, 0, 0.0);
    }
    Py_XDECREF(priced);
    Py_XDECREF(confidence);
    return row;
}

static PyObject *rows_of(const Array *bands) {
    PyObject *rows = PyList_New(bands->size);
    if (rows == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < bands->size; i++) {
        PyObject *row = band_row((const Band *)bands->items + i);
        if (row == NULL || row == Py_None) {
            Py_DECREF(rows);
            return row;
        }
        PyList_SET_ITEM(rows, i, row);
    }
    return rows;
}

static PyObject *group_bands(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *names[] = {"calls", "hour", "short", "thresholds", "out_of_range", "last_ts", NULL};
    PyObject *calls_in, *thresholds_in;
    long long hour, short_prompt, out_of_range;
    double last_ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O$LLO!Ld", names, &calls_in, &hour, &short_prompt,
                                     &PyTuple_Type, &thresholds_in, &out_of_range, &last_ts)) {
        return NULL;
    }
    Py_ssize_t threshold_count = PyTuple_GET_SIZE(thresholds_in);
    if (threshold_count > MAX_THRESHOLDS || hour <= 0) {
        PyErr_SetString(PyExc_ValueError, "at most 64 thresholds and a positive hour");
        return NULL;
    }
    double thresholds[MAX_THRESHOLDS];
    if (doubles_of(thresholds_in, thresholds) < 0) {
        return NULL;
    }
    Params params = {hour, short_prompt, thresholds, threshold_count, out_of_range, last_ts};
    PyObject *calls = PySequence_Fast(calls_in, "calls must be a sequence");
    PyObject *index = calls == NULL ? NULL : PyDict_New(), *result = NULL;
    Array bands = {NULL, 0, 0, sizeof(Band)};
    if (index != NULL) {
        int status = group_rows(calls, &params, index, &bands);
        if (status == 1) {
            result = rows_of(&bands);
        } else if (status == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    for (Py_ssize_t i = 0; i < bands.size; i++) {
        Py_XDECREF(((Band *)bands.items)[i].key);
    }
    free(bands.items);
    Py_XDECREF(index);
    Py_XDECREF(calls);
    return result;
}

static PyMethodDef methods[] = {
    {"group_bands", (PyCFunction)(void (*)(void))group_bands, METH_VARARGS | METH_KEYWORDS,
     "group_bands(calls, *, hour, short, thresholds, out_of_range, last_ts) -> rows | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_bands_c", "A transaction's new calls grouped into band stage rows.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bands_c(void) { return PyModule_Create(&module_def); }
