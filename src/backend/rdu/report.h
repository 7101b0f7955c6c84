// `tessera simulate --report out.html`: one self-contained HTML page (inline CSS and SVG, no
// scripts, no external references) showing an rdu mapping and its simulated timing: summary
// numbers, the mesh of each section as a utilisation heatmap, a roofline chart with each
// section on it, a table of sections, fused against unfused, and an optional sweep plot.
// Pure: results in, string out, so tests check it without the CLI.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backend/rdu/simulator.h"

namespace tessera::rdu {

// One mapping and its timing (both owned by the caller). Absent when mapping is null.
struct ReportRun {
  const RduMapping* mapping = nullptr;
  const SimReport* timing = nullptr;
  bool present() const { return mapping && timing; }
};

struct ReportSweepPoint {
  double value = 0;
  double samples_per_s = 0;
  double fraction_of_peak = 0;
  size_t sections = 0;
  bool valid = true;
};

struct ReportInput {
  std::string model, signature;
  int64_t batch = 1;
  ReportRun fused, unfused;
  bool main_is_fused = true;            // the mapping drawn in detail (meshes, table)
  std::vector<std::string> problems;    // the validator's findings on the main mapping
  std::string sweep_param;              // empty: no sweep
  std::vector<ReportSweepPoint> sweep;
  // Meshes drawn at most (the slowest sections), further capped so a page holds at most
  // about `max_mesh_cells` cells.
  int max_meshes = 12;
  int max_mesh_cells = 20000;
};

std::string render_report(const ReportInput& in);

// Text safe inside HTML elements and attribute values.
std::string html_escape(std::string_view text);

// Utilisation in [0, 1] of each kernel slot's PCUs and PMUs in one section: PCUs, the
// fraction of the section's pipeline time they compute; PMUs, the fraction their ports are
// busy (layout kernels: their whole work). What the heatmap colours each unit by.
struct SlotUtilisation {
  std::vector<double> pcu, pmu;
};
SlotUtilisation slot_utilisation(const RduMapping& mapping, size_t section, const SectionTiming& timing);

}  // namespace tessera::rdu
