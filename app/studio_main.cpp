// lit-studio: the desktop GUI. For now a window that shows the build it runs on; generation comes with the
// models and samplers. --screenshot renders a few frames, saves the window as PNG and exits (GUI tests).
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <stb_image_write.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda_support.h"
#include "kernels/torch_compat.h"

namespace {

struct StudioOptions {
  std::string screenshot;  // save the window here after `frames` frames, then exit
  int frames = 5;
  int width = 1100;
  int height = 700;
};

bool save_screenshot(const std::string& path, int width, int height) {
  std::vector<unsigned char> pixels(static_cast<size_t>(width) * height * 4);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, width, height, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
  stbi_flip_vertically_on_write(1);  // OpenGL rows run bottom-up
  return stbi_write_png(path.c_str(), width, height, 4, pixels.data(), width * 4) != 0;
}

void draw_about(const std::string& cuda_line) {
  ImGui::SetNextWindowPos(ImVec2(20, 20), ImGuiCond_FirstUseEver);
  ImGui::SetNextWindowSize(ImVec2(520, 200), ImGuiCond_FirstUseEver);
  ImGui::Begin("lit-studio");
  ImGui::Text("lit.cpp %s", LIT_VERSION);
  ImGui::Separator();
  ImGui::Text("LibTorch %s", lit::compat::torch_version());
  ImGui::TextWrapped("%s", cuda_line.c_str());
  ImGui::Separator();
  ImGui::TextWrapped("Model loading and generation arrive with the model and sampler issues.");
  ImGui::End();
}

}  // namespace

int main(int argc, char** argv) {
  StudioOptions opt;
  CLI::App cli{"lit-studio: generate images with LiT / DiT models"};
  cli.add_option("--screenshot", opt.screenshot, "render, save the window to this PNG and exit");
  cli.add_option("--frames", opt.frames, "frames to render before the screenshot")->check(CLI::PositiveNumber);
  cli.add_option("--width", opt.width, "window width")->check(CLI::PositiveNumber);
  cli.add_option("--height", opt.height, "window height")->check(CLI::PositiveNumber);
  CLI11_PARSE(cli, argc, argv);

  glfwSetErrorCallback([](int code, const char* msg) { std::fprintf(stderr, "lit-studio: GLFW error %d: %s\n", code, msg); });
  if (!glfwInit()) {
    std::fprintf(stderr, "lit-studio: error: cannot open a window (no display? set DISPLAY or run under xvfb-run)\n");
    return 1;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  GLFWwindow* window = glfwCreateWindow(opt.width, opt.height, "lit-studio", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "lit-studio: error: cannot create an OpenGL 3.3 window\n");
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330");

  const std::string cuda_line = lit::kernels::cuda_summary();
  int frame = 0;
  int rc = 0;
  while (!glfwWindowShouldClose(window)) {
    glfwPollEvents();
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    draw_about(cuda_line);
    ImGui::Render();
    int w = 0, h = 0;
    glfwGetFramebufferSize(window, &w, &h);
    glViewport(0, 0, w, h);
    glClearColor(0.10f, 0.11f, 0.13f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    if (!opt.screenshot.empty() && ++frame >= opt.frames) {
      if (!save_screenshot(opt.screenshot, w, h)) {
        std::fprintf(stderr, "lit-studio: error: cannot write %s\n", opt.screenshot.c_str());
        rc = 1;
      }
      break;
    }
    glfwSwapBuffers(window);
  }
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return rc;
}
