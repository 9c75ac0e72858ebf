# Runs PROGRAM and compares its standard output with EXPECTED, after
# replacing every hexadecimal address (0x...) with 0xADDR.
execute_process(COMMAND ${PROGRAM} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}\n${out}\n${err}")
endif()
file(READ ${EXPECTED} expected)
string(REGEX REPLACE "0x[0-9a-fA-F]+" "0xADDR" out "${out}")
string(REGEX REPLACE "0x[0-9a-fA-F]+" "0xADDR" expected "${expected}")
if(NOT out STREQUAL expected)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/actual.txt "${out}")
  message(FATAL_ERROR "output differs from ${EXPECTED}\n--- actual ---\n${out}\n--- expected ---\n${expected}")
endif()
