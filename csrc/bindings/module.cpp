// The Python module qtorch._C. Importing it runs the TORCH_LIBRARY_IMPL registrations of the CUDA kernels (after
// qtorch/ops has defined the schemas). Its two functions are tooling for tile sweeps of the int8 GEMM
// (benchmarks/bench_int8_gemm.py --sweep-plans), never called by the ops:
//   _int8_force_plan(kernel: str, split_k: int)   every later int8 GEMM runs this plan where the kernel runs for M
//                                                  rows; kernel "" restores the plan table (csrc/int8_gemm/plan.cpp)
//   _int8_plan(M, N, K, cc_major, cc_minor, num_sms) -> str   the plan the ops launch, as "kernel/split_k"
#include <Python.h>

#include <string>

#include "int8_gemm/int8_gemm.h"

namespace {

PyObject* int8_force_plan(PyObject*, PyObject* args) {
  const char* name = nullptr;
  int split_k = 1;
  if (!PyArg_ParseTuple(args, "si", &name, &split_k)) return nullptr;
  const qtorch_int8::Kernel kernel = qtorch_int8::kernel_from_name(name);
  if (name[0] != '\0' && kernel == qtorch_int8::Kernel::kNone) {
    PyErr_SetString(PyExc_ValueError, (std::string("kernel: unknown int8 GEMM kernel '") + name + "'").c_str());
    return nullptr;
  }
  if (split_k < 1 || split_k > 8) {
    PyErr_SetString(PyExc_ValueError, ("split_k: expected 1..8, got " + std::to_string(split_k)).c_str());
    return nullptr;
  }
  qtorch_int8::force_plan(kernel, split_k);
  Py_RETURN_NONE;
}

PyObject* int8_plan(PyObject*, PyObject* args) {
  int M, N, K, major, minor, sms;
  if (!PyArg_ParseTuple(args, "iiiiii", &M, &N, &K, &major, &minor, &sms)) return nullptr;
  const qtorch_int8::LaunchPlan plan = qtorch_int8::choose_plan(M, N, K, major, minor, sms);
  const std::string text = std::string(qtorch_int8::kernel_name(plan.kernel)) + "/" + std::to_string(plan.split_k);
  return PyUnicode_FromString(text.c_str());
}

PyMethodDef methods[] = {
    {"_int8_force_plan", int8_force_plan, METH_VARARGS, "Force the int8 GEMM plan (kernel name, split_k); '' resets."},
    {"_int8_plan", int8_plan, METH_VARARGS, "The int8 GEMM plan for (M, N, K, cc_major, cc_minor, num_sms)."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "CUDA kernels of the qtorch:: ops", -1,
                                          methods};
  return PyModule_Create(&module_def);
}
