# QWEN3VL_SANITIZE=address;undefined applies sanitizers to the project's C++ code (not to CUDA).
if(QWEN3VL_SANITIZE)
  list(JOIN QWEN3VL_SANITIZE "," _qwen3vl_san)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${_qwen3vl_san}>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=all>)
  add_link_options(-fsanitize=${_qwen3vl_san})
endif()
