/* A transaction's new raw rows grouped by minute and by user-day, in C.
 *
 * The same grouping as prefold.stage_rows' Python loop (which stays the
 * reference and the fallback): ~4 us of bytecode per row there, most of the
 * committer's CPU after SQLite's own insert. Sums are kept in C (int64 with
 * overflow checks, doubles added in row order as Python adds them); the keys
 * are the same Python tuples in Python dicts, so groups are told apart
 * exactly as the Python loop tells them apart.
 *
 * group(calls, uses, *, bounds, width, last_ts, day_of, first_call_id) ->
 *     (minute_rows, activity_rows, user_call_rows) | None
 * minute_rows: (*key, requests, errors, 5 token sums, cost, baseline, priced,
 *     unpriced, latency_sum, latency_count, *cumulative buckets, ttft_sum,
 *     ttft_count) per minute key, in first-seen order (aggregate's stage layout);
 * activity_rows: (day, user, team, project, feature, requests, input, output,
 *     cost, feature_uses, first_seen, last_seen);
 * user_call_rows: user_calls.group_user_calls_python(calls, first_id=first_call_id):
 *     (day_start, user, first_call_id, first_ts, last_ts, JSON array of row ids)
 *     per (UTC day, user) of the calls, in first-seen order. Each call's activity
 *     group knows its (day, user) group, so this costs no second pass over the
 *     rows (a separate one cost ~0.3 us per call, mostly reading the rows again).
 * None: a value this reader leaves to Python (not an exact int or float where
 * one is expected, a user id that is not a str, a time out of range, a NaN, a
 * sum past int64).
 */
#include "_fold_c.h"

#include <math.h>

#define MAX_BUCKETS 64
#define CALL_WIDTH 28
#define USE_WIDTH 8

typedef struct {
    PyObject *key;
    int64_t counts[11]; /* requests, errors, 5 token sums, priced, unpriced, ttft_count, (unused) */
    double cost, baseline, latency, ttft;
    int64_t buckets[MAX_BUCKETS + 1];
} Minute;

typedef struct {
    PyObject *key;
    int64_t requests, input, output, uses;
    double cost, first, last;
    Py_ssize_t user_calls; /* 1 + the index of its (day, user) group of calls; 0: none yet */
} Activity;

typedef struct {
    PyObject *key; /* (day_start, user) */
    int64_t count, offset;
    double first_ts, last_ts;
} UserCalls;

/* The (day, user) groups of the calls, and the group of each call (-1: no user). */
typedef struct {
    PyObject *index;
    Array groups;
    Py_ssize_t *group_of;
} CallGroups;

#define DAY 86400


/* Python's float floor division by 86400 (float_floor_div), for the day number. */
static double floor_div(double x, double y) {
    double mod = fmod(x, y), div = (x - mod) / y, floordiv;
    if (mod && ((y < 0) != (mod < 0))) {
        div -= 1.0;
    }
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5) {
            floordiv += 1.0;
        }
    } else {
        floordiv = copysign(0.0, x / y);
    }
    return floordiv;
}

typedef struct {
    PyObject *day_of;
    double number;
    PyObject *day;
} DayCache;

/* The UTC date string of ts, from day_of(ts) once per day number. New reference. */
static PyObject *day_string(DayCache *cache, PyObject *ts_object, double ts) {
    double number = floor_div(ts, 86400.0);
    if (cache->day == NULL || number != cache->number) {
        PyObject *day = PyObject_CallOneArg(cache->day_of, ts_object);
        if (day == NULL) {
            return NULL;
        }
        Py_XSETREF(cache->day, day);
        cache->number = number;
    }
    return Py_NewRef(cache->day);
}

/* The activity group of a call or use row v (ts, user, _, team, project, feature, ...) at ts:
   keyed (day of ts, user, team, project, feature), its first and last times updated. */
static Activity *activity_for(DayCache *days, PyObject *index, Array *activity, PyObject *const *v, double ts) {
    PyObject *day = day_string(days, v[0], ts);
    if (day == NULL) {
        return NULL;
    }
    PyObject *key = PyTuple_Pack(5, day, v[1], v[3], v[4], v[5]);
    Py_DECREF(day);
    if (key == NULL) {
        return NULL;
    }
    int is_new;
    Py_ssize_t at = slot_of(index, activity, key, &is_new);
    if (at < 0) {
        Py_DECREF(key);
        return NULL;
    }
    Activity *a = (Activity *)activity->items + at;
    if (is_new) {
        a->key = key; /* the array owns it */
        a->first = a->last = ts;
    } else {
        Py_DECREF(key);
        a->first = ts < a->first ? ts : a->first;
        a->last = ts > a->last ? ts : a->last;
    }
    return a;
}

/* The (day, user) group of a call at ts in activity group a, which fixes both. NULL on a Python error. */
static UserCalls *user_calls_for(CallGroups *calls, Activity *a, PyObject *user, double ts) {
    if (a->user_calls == 0) {
        PyObject *day_start = PyLong_FromLongLong((long long)ts / DAY * DAY);
        PyObject *key = day_start == NULL ? NULL : PyTuple_Pack(2, day_start, user);
        Py_XDECREF(day_start);
        if (key == NULL) {
            return NULL;
        }
        int is_new;
        Py_ssize_t at = slot_of(calls->index, &calls->groups, key, &is_new);
        if (at < 0) {
            Py_DECREF(key);
            return NULL;
        }
        UserCalls *u = (UserCalls *)calls->groups.items + at;
        if (is_new) {
            u->key = key; /* the array owns it */
            u->first_ts = u->last_ts = ts;
        } else {
            Py_DECREF(key);
        }
        a->user_calls = at + 1;
    }
    UserCalls *u = (UserCalls *)calls->groups.items + (a->user_calls - 1);
    u->first_ts = ts < u->first_ts ? ts : u->first_ts;
    u->last_ts = ts > u->last_ts ? ts : u->last_ts;
    u->count++;
    return u;
}

/* 1: grouped; 0: leave to Python; -1: a Python error. */
static int group_rows(PyObject *calls, PyObject *uses, const double *bounds, Py_ssize_t bucket_count,
                      int64_t width, double last_ts, DayCache *days, PyObject *minute_index, Array *minutes,
                      PyObject *activity_index, Array *activity, CallGroups *call_groups) {
    PyObject *empty = PyUnicode_FromString("");
    PyObject *error = PyUnicode_FromString("error");
    int status = -1;
    if (empty == NULL || error == NULL) {
        goto done;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(calls);
    PyObject **items = PySequence_Fast_ITEMS(calls);
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *row = items[n];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != CALL_WIDTH) {
            status = 0;
            goto done;
        }
        PyObject **v = &PyTuple_GET_ITEM(row, 0);
        /* ts user _ team project feature _ model _ provider operation _ in out cache_read cache_write
           reasoning cost base priced latency ttft _ outcome _ routed _ _ */
        PyObject *ts_object = v[0], *user = v[1], *cost = v[17], *base = v[18], *latency_object = v[20],
                 *ttft = v[21];
        int64_t tokens[5];
        if (!PyFloat_CheckExact(ts_object) || !PyFloat_CheckExact(latency_object) ||
            (cost != Py_None && !PyFloat_CheckExact(cost)) || (base != Py_None && !PyFloat_CheckExact(base)) ||
            (ttft != Py_None && !PyFloat_CheckExact(ttft))) {
            status = 0;
            goto done;
        }
        for (int t = 0; t < 5; t++) {
            if (!as_int64(v[12 + t], &tokens[t])) {
                status = 0;
                goto done;
            }
        }
        double ts = PyFloat_AS_DOUBLE(ts_object), latency = PyFloat_AS_DOUBLE(latency_object);
        if (!(ts >= 0.0 && ts <= last_ts) || isnan(latency)) {
            status = 0;
            goto done;
        }
        int priced = PyObject_IsTrue(v[19]);
        int is_error = PyObject_RichCompareBool(v[23], error, Py_EQ);
        if (priced < 0 || is_error < 0) {
            goto done;
        }
        PyObject *bucket = PyLong_FromLongLong((long long)ts / width * width);
        PyObject *feature = or_empty(v[5], empty), *team = or_empty(v[3], empty), *project = or_empty(v[4], empty);
        PyObject *key = NULL;
        if (bucket != NULL && feature != NULL && team != NULL && project != NULL) {
            key = PyTuple_Pack(9, bucket, v[7], v[9], v[10], feature, team, project, v[23], v[25]);
        }
        Py_XDECREF(bucket);
        Py_XDECREF(feature);
        Py_XDECREF(team);
        Py_XDECREF(project);
        if (key == NULL) {
            goto done;
        }
        int is_new;
        Py_ssize_t at = slot_of(minute_index, minutes, key, &is_new);
        if (at < 0) {
            Py_DECREF(key);
            goto done;
        }
        Minute *m = (Minute *)minutes->items + at;
        if (is_new) {
            m->key = key; /* the array owns it */
        } else {
            Py_DECREF(key);
        }
        m->counts[0] += 1;
        m->counts[1] += is_error;
        for (int t = 0; t < 5; t++) {
            if (!add(&m->counts[2 + t], tokens[t])) {
                status = 0;
                goto done;
            }
        }
        if (cost != Py_None) {
            m->cost += PyFloat_AS_DOUBLE(cost);
        }
        if (base != Py_None) {
            m->baseline += PyFloat_AS_DOUBLE(base);
        }
        m->counts[priced ? 7 : 8] += 1;
        m->latency += latency;
        if (ttft != Py_None) {
            m->ttft += PyFloat_AS_DOUBLE(ttft);
            m->counts[9] += 1;
        }
        Py_ssize_t low = 0, high = bucket_count; /* bisect_left */
        while (low < high) {
            Py_ssize_t middle = (low + high) / 2;
            if (bounds[middle] < latency) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        m->buckets[low] += 1;
        call_groups->group_of[n] = -1;
        if (user == Py_None) {
            continue;
        }
        if (!PyUnicode_CheckExact(user)) {
            status = 0;
            goto done;
        }
        Activity *a = activity_for(days, activity_index, activity, v, ts);
        if (a == NULL) {
            goto done;
        }
        if (user_calls_for(call_groups, a, user, ts) == NULL) {
            goto done;
        }
        call_groups->group_of[n] = a->user_calls - 1;
        a->requests += 1;
        if (!add(&a->input, tokens[0]) || !add(&a->output, tokens[1])) {
            status = 0;
            goto done;
        }
        if (cost != Py_None) {
            a->cost += PyFloat_AS_DOUBLE(cost);
        }
    }
    count = PySequence_Fast_GET_SIZE(uses);
    items = PySequence_Fast_ITEMS(uses);
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *row = items[n];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != USE_WIDTH) {
            status = 0;
            goto done;
        }
        PyObject **v = &PyTuple_GET_ITEM(row, 0);
        /* ts user _ team project feature count _ */
        int64_t uses_count;
        if (!PyFloat_CheckExact(v[0]) || !as_int64(v[6], &uses_count)) {
            status = 0;
            goto done;
        }
        double ts = PyFloat_AS_DOUBLE(v[0]);
        if (!(ts >= 0.0 && ts <= last_ts)) {
            status = 0;
            goto done;
        }
        if (v[1] == Py_None) {
            continue;
        }
        Activity *a = activity_for(days, activity_index, activity, v, ts);
        if (a == NULL) {
            goto done;
        }
        if (!add(&a->uses, uses_count)) {
            status = 0;
            goto done;
        }
    }
    status = 1;
done:
    Py_XDECREF(empty);
    Py_XDECREF(error);
    return status;
}

static PyObject *minute_row(const Minute *m, Py_ssize_t bucket_count) {
    if (isnan(m->cost) || isnan(m->baseline) || isnan(m->latency) || isnan(m->ttft)) {
        return Py_NewRef(Py_None);
    }
    if (key_has_nan(m->key, 9)) { /* a NaN label (routed, say) */
        return Py_NewRef(Py_None);
    }
    Py_ssize_t size = 9 + 13 + bucket_count + 2;
    PyObject *row = PyTuple_New(size);
    if (row == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    for (; i < 9; i++) {
        PyTuple_SET_ITEM(row, i, Py_NewRef(PyTuple_GET_ITEM(m->key, i)));
    }
    PyObject *values[13] = {
        PyLong_FromLongLong(m->counts[0]), PyLong_FromLongLong(m->counts[1]), PyLong_FromLongLong(m->counts[2]),
        PyLong_FromLongLong(m->counts[3]), PyLong_FromLongLong(m->counts[4]), PyLong_FromLongLong(m->counts[5]),
        PyLong_FromLongLong(m->counts[6]), PyFloat_FromDouble(m->cost),       PyFloat_FromDouble(m->baseline),
        PyLong_FromLongLong(m->counts[7]), PyLong_FromLongLong(m->counts[8]), PyFloat_FromDouble(m->latency),
        PyLong_FromLongLong(m->counts[0]),
    };
    for (int k = 0; k < 13; k++) {
        PyTuple_SET_ITEM(row, i++, values[k]);
    }
    int64_t running = 0;
    for (Py_ssize_t b = 0; b < bucket_count; b++) {
        running += m->buckets[b];
        PyTuple_SET_ITEM(row, i++, PyLong_FromLongLong(running));
    }
    PyTuple_SET_ITEM(row, i++, PyFloat_FromDouble(m->ttft));
    PyTuple_SET_ITEM(row, i++, PyLong_FromLongLong(m->counts[9]));
    for (Py_ssize_t k = 0; k < size; k++) {
        if (PyTuple_GET_ITEM(row, k) == NULL) {
            Py_DECREF(row);
            return NULL;
        }
    }
    return row;
}

static PyObject *activity_row(const Activity *a) {
    if (isnan(a->cost)) {
        return Py_NewRef(Py_None);
    }
    PyObject *k = a->key;
    return Py_BuildValue("(OOOOOLLLdLdd)", PyTuple_GET_ITEM(k, 0), PyTuple_GET_ITEM(k, 1), PyTuple_GET_ITEM(k, 2),
                         PyTuple_GET_ITEM(k, 3), PyTuple_GET_ITEM(k, 4), (long long)a->requests,
                         (long long)a->input, (long long)a->output, a->cost, (long long)a->uses, a->first, a->last);
}

/* Decimal digits of a non-negative id at text; how many. */
static size_t put_id(char *text, int64_t id) {
    char digits[20];
    size_t count = 0;
    do {
        digits[count++] = (char)('0' + id % 10);
        id /= 10;
    } while (id > 0);
    for (size_t i = 0; i < count; i++) {
        text[i] = digits[count - 1 - i];
    }
    return count;
}

/* "[id,id,...]" of ids[0..count). New reference. */
static PyObject *json_ids(const int64_t *ids, int64_t count) {
    char *text = malloc((size_t)count * 21 + 3); /* at most 19 digits and a comma each */
    if (text == NULL) {
        return PyErr_NoMemory();
    }
    size_t used = 0;
    text[used++] = '[';
    for (int64_t i = 0; i < count; i++) {
        if (i) {
            text[used++] = ',';
        }
        used += put_id(text + used, ids[i]);
    }
    text[used++] = ']';
    PyObject *result = PyUnicode_DecodeASCII(text, (Py_ssize_t)used, NULL);
    free(text);
    return result;
}

/* user_calls rows of the (day, user) groups: each group's row ids in ascending order. */
static PyObject *user_call_rows(const CallGroups *calls, Py_ssize_t call_count, int64_t first_id) {
    UserCalls *groups = (UserCalls *)calls->groups.items;
    Py_ssize_t size = calls->groups.size;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        groups[i].offset = total;
        total += groups[i].count;
    }
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    int64_t *filled = calloc((size_t)(size ? size : 1), sizeof(int64_t));
    PyObject *rows = ids == NULL || filled == NULL ? PyErr_NoMemory() : PyList_New(size);
    for (Py_ssize_t n = 0; rows != NULL && n < call_count; n++) { /* in row order: ids ascend */
        Py_ssize_t at = calls->group_of[n];
        if (at >= 0) {
            ids[groups[at].offset + filled[at]++] = first_id + n;
        }
    }
    for (Py_ssize_t i = 0; rows != NULL && i < size; i++) {
        const UserCalls *g = groups + i;
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

/* Rows of the grouped items; None when a sum is NaN (the Python loop hands those to SQL). */
static PyObject *rows_of(const Array *minutes, const Array *activity, Py_ssize_t bucket_count,
                         const CallGroups *calls, Py_ssize_t call_count, int64_t first_id) {
    PyObject *minute_rows = PyList_New(minutes->size), *activity_rows = PyList_New(activity->size);
    PyObject *calls_rows = NULL, *result = NULL;
    if (minute_rows == NULL || activity_rows == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < minutes->size; i++) {
        PyObject *row = minute_row((const Minute *)minutes->items + i, bucket_count);
        if (row == NULL || row == Py_None) {
            result = row;
            goto done;
        }
        PyList_SET_ITEM(minute_rows, i, row);
    }
    for (Py_ssize_t i = 0; i < activity->size; i++) {
        PyObject *row = activity_row((const Activity *)activity->items + i);
        if (row == NULL || row == Py_None) {
            result = row;
            goto done;
        }
        PyList_SET_ITEM(activity_rows, i, row);
    }
    calls_rows = user_call_rows(calls, call_count, first_id);
    if (calls_rows != NULL) {
        result = PyTuple_Pack(3, minute_rows, activity_rows, calls_rows);
    }
done:
    Py_XDECREF(minute_rows);
    Py_XDECREF(activity_rows);
    Py_XDECREF(calls_rows);
    return result;
}

static PyObject *group(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *names[] = {"calls", "uses", "bounds", "width", "last_ts", "day_of", "first_call_id", NULL};
    PyObject *calls_in, *uses_in, *bounds_in, *day_of;
    long long width, first_call_id;
    double last_ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO$O!LdOL", names, &calls_in, &uses_in, &PyTuple_Type,
                                     &bounds_in, &width, &last_ts, &day_of, &first_call_id)) {
        return NULL;
    }
    if (first_call_id < 0) {
        PyErr_SetString(PyExc_ValueError, "first_call_id must be >= 0");
        return NULL;
    }
    Py_ssize_t bucket_count = PyTuple_GET_SIZE(bounds_in);
    if (bucket_count > MAX_BUCKETS || width <= 0) {
        PyErr_SetString(PyExc_ValueError, "at most 64 latency bounds and a positive width");
        return NULL;
    }
    double bounds[MAX_BUCKETS];
    if (doubles_of(bounds_in, bounds) < 0) {
        return NULL;
    }
    PyObject *calls = PySequence_Fast(calls_in, "calls must be a sequence");
    PyObject *uses = calls == NULL ? NULL : PySequence_Fast(uses_in, "uses must be a sequence");
    PyObject *minute_index = PyDict_New(), *activity_index = PyDict_New(), *result = NULL;
    Array minutes = {NULL, 0, 0, sizeof(Minute)}, activity = {NULL, 0, 0, sizeof(Activity)};
    DayCache days = {day_of, 0.0, NULL};
    Py_ssize_t call_count = calls == NULL ? 0 : PySequence_Fast_GET_SIZE(calls);
    CallGroups call_groups = {PyDict_New(), {NULL, 0, 0, sizeof(UserCalls)}, NULL};
    call_groups.group_of = malloc(sizeof(Py_ssize_t) * (size_t)(call_count ? call_count : 1));
    if (call_groups.group_of == NULL) {
        PyErr_NoMemory();
    } else if (uses != NULL && minute_index != NULL && activity_index != NULL && call_groups.index != NULL) {
        int status = group_rows(calls, uses, bounds, bucket_count, width, last_ts, &days, minute_index, &minutes,
                                activity_index, &activity, &call_groups);
        if (status == 1) {
            result = rows_of(&minutes, &activity, bucket_count, &call_groups, call_count, first_call_id);
        } else if (status == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    for (Py_ssize_t i = 0; i < call_groups.groups.size; i++) {
        Py_XDECREF(((UserCalls *)call_groups.groups.items)[i].key);
    }
    free(call_groups.groups.items);
    free(call_groups.group_of);
    Py_XDECREF(call_groups.index);
    for (Py_ssize_t i = 0; i < minutes.size; i++) {
        Py_XDECREF(((Minute *)minutes.items)[i].key);
    }
    for (Py_ssize_t i = 0; i < activity.size; i++) {
        Py_XDECREF(((Activity *)activity.items)[i].key);
    }
    free(minutes.items);
    free(activity.items);
    Py_XDECREF(days.day);
    Py_XDECREF(minute_index);
    Py_XDECREF(activity_index);
    Py_XDECREF(calls);
    Py_XDECREF(uses);
    return result;
}

static PyMethodDef methods[] = {
    {"group", (PyCFunction)(void (*)(void))group, METH_VARARGS | METH_KEYWORDS,
     "group(calls, uses, *, bounds, width, last_ts, day_of, first_call_id) -> (minute_rows, activity_rows, "
     "user_call_rows) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_prefold_c", "A transaction's new raw rows grouped by minute, user-day and (day, user) of calls.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__prefold_c(void) { return PyModule_Create(&module_def); }
