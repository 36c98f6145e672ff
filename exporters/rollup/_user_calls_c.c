/* A fold's new calls grouped by (day, user) into user_calls rows, in C.
 *
 * The same grouping as user_calls.group_user_calls_python (which stays the
 * reference and the fallback): a key tuple, a dict lookup and a list append
 * per call cost ~0.6 us of bytecode there. Keys are the same Python tuples in
 * a Python dict, so groups are told apart exactly as there.
 *
 * group_user_calls(calls, *, first_id, width, last_ts) -> rows | None
 * calls[n] is the call with row id first_id + n; rows: (bucket, user_id,
 *     first_call_id, first_ts, last_ts, call_ids) per (width-second bucket, user)
 *     in first-seen order,
 *     call_ids a JSON array of the group's row ids in ascending order.
 * None: a value this reader leaves to the SQL grouping (a time that is not a
 * float in [0, last_ts], a user id that is not a str).
 */
#include "_fold_c.h"

#include <stdio.h>

#define CALL_MIN_WIDTH 2

typedef struct {
    PyObject *key;
    int64_t count, offset;
    double first_ts, last_ts;
} Group;

/* 1: grouped; 0: leave to SQL; -1: a Python error. group_of[n]: the group of call n, or -1. */
static int assign_groups(PyObject *calls, int64_t width, double last_ts, PyObject *index, Array *groups,
                         Py_ssize_t *group_of) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(calls);
    PyObject **items = PySequence_Fast_ITEMS(calls);
    PyObject *bucket_object = NULL; /* consecutive calls mostly share their bucket: one object for it */
    long long bucket_value = -1;
    int status = -1;
    for (Py_ssize_t n = 0; n < count; n++) {
        group_of[n] = -1;
        PyObject *row = items[n];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < CALL_MIN_WIDTH) {
            status = 0;
            goto done;
        }
        PyObject *ts_object = PyTuple_GET_ITEM(row, 0), *user = PyTuple_GET_ITEM(row, 1);
        if (user == Py_None) {
            continue;
        }
        if (!PyFloat_CheckExact(ts_object) || !PyUnicode_CheckExact(user)) {
            status = 0;
            goto done;
        }
        double ts = PyFloat_AS_DOUBLE(ts_object);
        if (!(ts >= 0.0 && ts <= last_ts)) {
            status = 0;
            goto done;
        }
        long long bucket = (long long)ts / width * width;
        if (bucket_object == NULL || bucket != bucket_value) {
            Py_XSETREF(bucket_object, PyLong_FromLongLong(bucket));
            if (bucket_object == NULL) {
                goto done;
            }
            bucket_value = bucket;
        }
        PyObject *key = PyTuple_Pack(2, bucket_object, user);
        if (key == NULL) {
            goto done;
        }
        int is_new;
        Py_ssize_t at = slot_of(index, groups, key, &is_new);
        if (at < 0) {
            Py_DECREF(key);
            goto done;
        }
        Group *g = (Group *)groups->items + at;
        if (is_new) {
            g->key = key; /* the array owns it */
            g->first_ts = g->last_ts = ts;
        } else {
            Py_DECREF(key);
            g->first_ts = ts < g->first_ts ? ts : g->first_ts;
            g->last_ts = ts > g->last_ts ? ts : g->last_ts;
        }
        g->count++;
        group_of[n] = at;
    }
    status = 1;
done:
    Py_XDECREF(bucket_object);
    return status;
}

/* "[id,id,...]" of ids[0..count). New reference. */
static PyObject *json_ids(const int64_t *ids, int64_t count) {
    size_t capacity = (size_t)count * 21 + 3; /* 20 digits and a comma each */
    char *text = malloc(capacity);
    if (text == NULL) {
        return PyErr_NoMemory();
    }
    size_t used = 0;
    text[used++] = '[';
    for (int64_t i = 0; i < count; i++) {
        used += (size_t)snprintf(text + used, capacity - used, i ? ",%lld" : "%lld", (long long)ids[i]);
    }
    text[used++] = ']';
    PyObject *result = PyUnicode_DecodeASCII(text, (Py_ssize_t)used, NULL);
    free(text);
    return result;
}

static PyObject *rows_of(Array *groups, const Py_ssize_t *group_of, Py_ssize_t calls, int64_t first_id) {
    Group *items = (Group *)groups->items;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < groups->size; i++) {
        items[i].offset = total;
        total += items[i].count;
    }
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    int64_t *filled = calloc((size_t)(groups->size ? groups->size : 1), sizeof(int64_t));
    PyObject *rows = PyList_New(groups->size);
    if (ids == NULL || filled == NULL || rows == NULL) {
        free(ids);
        free(filled);
        if (rows == NULL) {
            return NULL; /* PyList_New set the error */
        }
        Py_DECREF(rows);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t n = 0; n < calls; n++) { /* in row order: each group's ids ascend */
        Py_ssize_t at = group_of[n];
        if (at >= 0) {
            ids[items[at].offset + filled[at]++] = first_id + n;
        }
    }
    for (Py_ssize_t i = 0; i < groups->size; i++) {
        const Group *g = items + i;
        const int64_t *own = ids + g->offset;
        PyObject *json = json_ids(own, g->count);
        PyObject *row = json == NULL ? NULL
                                     : Py_BuildValue("(OOLddO)", PyTuple_GET_ITEM(g->key, 0), PyTuple_GET_ITEM(g->key, 1),
                                                     (long long)own[0], g->first_ts, g->last_ts, json);
        Py_XDECREF(json);
        if (row == NULL) {
            Py_CLEAR(rows);
            break;
        }
        PyList_SET_ITEM(rows, i, row);
    }
    free(ids);
    free(filled);
    return rows;
}

static PyObject *group_user_calls(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *names[] = {"calls", "first_id", "width", "last_ts", NULL};
    PyObject *calls_in;
    long long first_id, width;
    double last_ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O$LLd", names, &calls_in, &first_id, &width, &last_ts)) {
        return NULL;
    }
    if (width <= 0) {
        PyErr_SetString(PyExc_ValueError, "width must be positive");
        return NULL;
    }
    PyObject *calls = PySequence_Fast(calls_in, "calls must be a sequence");
    if (calls == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(calls);
    Py_ssize_t *group_of = malloc(sizeof(Py_ssize_t) * (size_t)(count ? count : 1));
    PyObject *index = PyDict_New(), *result = NULL;
    Array groups = {NULL, 0, 0, sizeof(Group)};
    if (group_of == NULL) {
        PyErr_NoMemory();
    } else if (index != NULL) {
        int status = assign_groups(calls, width, last_ts, index, &groups, group_of);
        if (status == 1) {
            result = rows_of(&groups, group_of, count, first_id);
        } else if (status == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    for (Py_ssize_t i = 0; i < groups.size; i++) {
        Py_XDECREF(((Group *)groups.items)[i].key);
    }
    free(groups.items);
    free(group_of);
    Py_XDECREF(index);
    Py_DECREF(calls);
    return result;
}

static PyMethodDef methods[] = {
    {"group_user_calls", (PyCFunction)(void (*)(void))group_user_calls, METH_VARARGS | METH_KEYWORDS,
     "group_user_calls(calls, *, first_id, width, last_ts) -> rows | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_user_calls_c", "A fold's new calls grouped by day and user.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__user_calls_c(void) { return PyModule_Create(&module_def); }
